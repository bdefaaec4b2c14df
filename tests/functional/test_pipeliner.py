"""The limiter's auto-pipelining against a real Redis: bursts need a few connections, the
timeout bounds Redis's answer and never the queue, and failures are told apart by reason."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.limits import Limits
from router.limits.pipeline import MAX_IN_FLIGHT, Pipeliner
from router.limits.redis import RedisLimiter
from router.limits.types import failure_reason
from tests.redis_server import RedisServer

# Keeps Redis busy for ARGV[1] seconds: a slow answer, on demand.
SLOW = """
local t = redis.call('TIME')
local start = t[1] + t[2] / 1e6
repeat t = redis.call('TIME') until t[1] + t[2] / 1e6 - start >= tonumber(ARGV[1])
return 'slept'
"""


@pytest.fixture
async def small_pool(private_redis: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A client whose pool fails past MAX_IN_FLIGHT connections instead of waiting."""
    pool = redis.asyncio.ConnectionPool.from_url(private_redis.url, max_connections=MAX_IN_FLIGHT)
    client = redis.asyncio.Redis.from_pool(pool)
    await client.flushdb()  # our own private server, never the shared one
    yield client
    await client.aclose()


@pytest.mark.parametrize("size", [300, 1000])
async def test_a_burst_needs_no_more_connections_than_in_flight(small_pool, size):
    errors: list[BaseException] = []
    limiter = RedisLimiter(small_pool, timeout=5.0, on_error=lambda exc, _: errors.append(exc))
    limits = Limits(rpm=10**6, concurrency=50)
    answers = await asyncio.gather(
        *(limiter.admit("k_burst", limits, 1, f"lease{i}") for i in range(size))
    )
    assert errors == []  # no MaxConnectionsError, no timeout
    assert sum(a.allowed for a in answers) == 50
    assert {a.kind for a in answers if not a.allowed} == {"concurrency"}
    assert limiter._pipeliner.round_trips <= size // 50  # batched, not one trip per call
    await limiter.close()


async def test_the_timeout_bounds_the_answer_not_the_queue(small_pool):
    pipeliner = Pipeliner(small_pool, timeout=0.5, max_batch=1, max_in_flight=1)
    started = time.monotonic()
    replies = await asyncio.gather(*(pipeliner.command("EVAL", SLOW, 0, "0.2") for _ in range(4)))
    assert replies == [b"slept"] * 4  # each answered in time, though the last queued longer
    assert time.monotonic() - started >= 0.8  # one after the other: 4 x 0.2 s, past 0.5 s
    with pytest.raises(TimeoutError):  # an answer slower than the timeout fails
        await pipeliner.command("EVAL", SLOW, 0, "0.7")
    await pipeliner.close()


async def test_a_caller_that_left_is_not_sent(small_pool):
    pipeliner = Pipeliner(small_pool, timeout=5.0)
    gone = asyncio.ensure_future(pipeliner.command("SET", "sy:gone", "1"))
    await asyncio.sleep(0)  # queued, its batch not sent yet
    gone.cancel()
    assert await pipeliner.command("EXISTS", "sy:gone") == 0
    assert pipeliner.round_trips == 1
    await pipeliner.close()


async def test_an_error_reply_fails_only_its_own_call(small_pool):
    pipeliner = Pipeliner(small_pool, timeout=5.0)
    replies: list[object] = await asyncio.gather(
        pipeliner.command("PING"),
        pipeliner.command("NOT-A-COMMAND"),
        return_exceptions=True,
    )
    good, bad = replies
    assert good is True
    assert isinstance(bad, ResponseError)
    assert pipeliner.round_trips == 1
    await pipeliner.close()


def test_failure_reasons() -> None:
    assert failure_reason(TimeoutError()) == "timeout"
    assert failure_reason(RedisTimeoutError()) == "timeout"
    assert failure_reason(RedisConnectionError()) == "connection"
    assert failure_reason(ConnectionRefusedError()) == "connection"
    assert failure_reason(ResponseError("OOM command not allowed")) == "error"


async def test_close_leaves_no_caller_waiting(small_pool):
    pipeliner = Pipeliner(small_pool, timeout=5.0)
    queued = asyncio.ensure_future(pipeliner.command("PING"))
    await asyncio.sleep(0)
    await pipeliner.close()
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(asyncio.CancelledError):
        await pipeliner.command("PING")  # nothing is sent after close
    assert pipeliner.round_trips == 0
