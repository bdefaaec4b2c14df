"""A Redis Cluster is refused at start: the router runs on one Redis, and says so clearly.

Against a cluster, the single-node client left half the keys' limits unenforced and key
creation failed with MovedError. Until a test runs a real cluster, the router does not start
on one. The cluster here is one real ``redis-server --cluster-enabled yes`` node.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio

from router.config import RedisConfig
from router.redisconn import refuse_cluster, shared_client
from router.startup import StartupError
from tests.functional.router_process import REPO_ROOT, write_config
from tests.redis_server import RedisServer, free_port

SERVE_TIMEOUT = 60.0  # the router must give up on its own long before this


@pytest.fixture(scope="module")
def cluster_node() -> Iterator[RedisServer]:
    with RedisServer(cluster=True) as node:
        yield node


async def test_a_cluster_node_is_refused(cluster_node: RedisServer) -> None:
    client = shared_client(RedisConfig(url=cluster_node.url))
    try:
        assert (await client.info("cluster"))["cluster_enabled"] == 1  # a real cluster node
        with pytest.raises(StartupError, match=r"Redis Cluster .* single Redis"):
            await refuse_cluster(client)
    finally:
        await client.aclose()


async def test_a_standalone_redis_is_accepted() -> None:
    with RedisServer() as server:
        client = redis.asyncio.Redis.from_url(server.url)
        try:
            await refuse_cluster(client)
        finally:
            await client.aclose()


async def test_an_unreachable_redis_does_not_stop_the_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = shared_client(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        with caplog.at_level(logging.WARNING, logger="switchyard"):
            await refuse_cluster(client)  # the failure policy decides meanwhile
    finally:
        await client.aclose()
    assert [r.getMessage() for r in caplog.records] == [
        "redis unreachable at start; mode not checked"
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_exits_with_one_clear_line(
    cluster_node: RedisServer, tmp_path: Path, workers: int
) -> None:
    password = "cluster-secret-password-0123"  # a URL's credentials never reach the message
    url = f"redis://:{password}@127.0.0.1:{cluster_node.port}/0"
    config = {
        "server": {"host": "127.0.0.1", "port": 0, "workers": workers},
        "redis": {"url": url},
        "models": {"gpt-4o": {"backends": [{"name": "a", "url": "http://127.0.0.1:9/v1"}]}},
    }
    path = write_config(config, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "router", "serve", "--config", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SERVE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert password not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("switchyard: redis.url points at a Redis Cluster node")
    assert '"listening"' not in done.stderr
