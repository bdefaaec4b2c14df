"""A concurrency limit holds under any burst, with Redis and with the in-process limiter.

Before the limiter pipelined its calls, a key limited to 50 concurrent requests admitted 300 of
a burst of 300: past 100 connections redis-py's pool raised ``MaxConnectionsError``, which
``fail_open`` admitted (and ``fail_closed`` answered with 503).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.scrape import scrape
from tests.redis_server import RedisServer
from tests.reliability.burst import burst
from tests.reliability.scan import assert_clean

CONCURRENCY = 50
BURSTY = "sk-test-bursty-key-0123456789"
SECRETS = (BURSTY, CLIENT_KEY, UPSTREAM_KEY_A, UPSTREAM_KEY_B)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def bursty_config(fake: Fake, name: str, redis: dict[str, Any] | None) -> dict[str, Any]:
    config = make_config({"gpt-4o": {"backends": [backend(fake, UPSTREAM_KEY_A)]}})
    limits = {"concurrency": CONCURRENCY}
    config["keys"].append({"name": name, "key": BURSTY, "limits": limits})
    if redis is not None:
        # A generous timeout: only the pool, never a slow machine, may spoil the count.
        config["redis"] = {"timeout_ms": 2000, **redis}
    return config


@pytest.mark.parametrize("size", [300, 1000])
@pytest.mark.parametrize("limiter", ["local", "fail_open", "fail_closed"])
async def test_a_burst_admits_exactly_the_limit(
    start_router: RouterFactory,
    fake_a: Fake,
    redis_server: RedisServer,
    limiter: str,
    size: int,
) -> None:
    redis = None if limiter == "local" else {"url": redis_server.url, "failure": limiter}
    name = f"bursty-{limiter}-{size}"  # a key of its own: no lease of another test counts
    router = start_router(bursty_config(fake_a, name, redis))
    result = await burst(router.base_url, BURSTY, fake_a, size)
    assert (result.held, result.statuses()) == (CONCURRENCY, {429: size - CONCURRENCY})
    for _, body in result.answers:
        error = orjson.loads(body)["error"]
        assert (error["code"], error["type"]) == ("rate_limit_exceeded", "requests")
    metrics = scrape(f"{router.url}/metrics")
    decided = "switchyard_rate_limit_decisions_total"
    assert metrics.sum(decided, kind="concurrency", outcome="allowed") == CONCURRENCY
    assert metrics.sum(decided, kind="concurrency", outcome="refused") == size - CONCURRENCY
    # The slots came back when the held requests ended: the key is usable again.
    again = await burst(router.base_url, BURSTY, fake_a, CONCURRENCY + 1)
    assert (again.held, again.statuses()) == (CONCURRENCY, {429: 1})
    assert_clean([*router.lines, metrics.text, *(body for _, body in result.answers)], SECRETS)
