"""Pooled Redis connections outlive a Redis restart: the next call after it succeeds.

Each pooled connection from before the restart is closed by the server; its first use then
fails ("Connection closed by server"), which for the limiter meant a burst right after the
restart got 503 (fail_closed) or went unchecked (fail_open). The clients retry such a failure
once, at once, on a fresh connection (``router.redisconn``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis.asyncio

from router.config import RedisConfig
from router.redisconn import limiter_client, shared_client
from tests.redis_server import RedisServer

Client = Callable[[RedisConfig], redis.asyncio.Redis]


@pytest.mark.parametrize("make", [limiter_client, shared_client], ids=["limiter", "key store"])
async def test_every_pooled_connection_works_right_after_a_restart(make: Client) -> None:
    with RedisServer() as server:
        client = make(RedisConfig(url=server.url, timeout_ms=2000))
        try:
            # Open several pooled connections (the limiter keeps 4), all idle afterwards.
            await asyncio.gather(*(client.set(f"k{i}", i) for i in range(8)))
            server.kill()
            server.start()  # same port, empty
            for _ in range(4):  # every pooled connection is used once after the restart
                answers = await asyncio.gather(*(client.ping() for _ in range(8)))
                assert all(answers)
            assert await client.get("k0") is None  # the new, empty server answered
        finally:
            await client.aclose()
