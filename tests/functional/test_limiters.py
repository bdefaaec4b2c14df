"""Both limiters against real Redis: the bucket table through the Lua script, the limits as a
client sees them, atomicity, races between routers, and Redis failing and coming back.

Redis is a private redis-server per session (tests/redis_server.py), never the shared one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio
from redis.crc import key_slot

from router.limits import (
    Admission,
    Limiter,
    LimiterUnavailable,
    Limits,
    LocalLimiter,
    bucket,
)
from router.limits.bucket import BucketSpec, BucketState
from router.limits.redis import RedisLimiter
from tests.bucket_cases import CASES, IDS, assert_close, initial
from tests.redis_server import RedisServer

KEY = "k_test"
CHECKED = 5.0  # a timeout generous enough that only the failure tests ever hit one


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(private_redis: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(private_redis.url)
    await connection.flushdb()  # our own private server, never the shared one
    yield connection
    await connection.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["local", "redis"])
async def make(request, client, clock):
    """Build the limiter under test, Local or Redis, on the fake clock; closed at the end."""
    built: list[Limiter] = []

    def build(**options) -> Limiter:
        if request.param == "local":
            limiter: Limiter = LocalLimiter(clock=clock, **options)
        else:
            limiter = RedisLimiter(client, clock=clock, timeout=CHECKED, **options)
        built.append(limiter)
        return limiter

    yield build
    for limiter in built:
        await limiter.close()


# The shared table, through admit.lua and settle.lua.


async def stored(client, limiter: RedisLimiter, case) -> BucketState:
    level, stamp = await client.hmget(limiter.keys(KEY)[1], ["level", "stamp"])
    spec = BucketSpec(case["capacity"])
    if level is None:
        return bucket.full(spec, case["now"])
    return bucket.level_at(BucketState(float(level), float(stamp)), spec, case["now"])


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_table_through_lua(client, case):
    limiter = RedisLimiter(client, clock=lambda: case["now"], timeout=CHECKED)
    limits = Limits(tpm=case["capacity"])
    if case["state"] is not None:
        state = initial(case)
        await client.hset(
            limiter.keys(KEY)[1], mapping={"level": state.level, "stamp": state.stamp}
        )
    if case["op"] == "take":
        admission = await limiter.admit(KEY, limits, case["amount"], "lease")
        assert admission.allowed is case["allowed"]
        assert admission.kind == (None if case["allowed"] else "tokens")
        assert_close(admission.retry_after, case["retry_after"])
        remaining = max(0, math.floor(case["level"]))
        assert admission.headers["x-ratelimit-remaining-tokens"] == str(remaining)
    else:
        await limiter.settle(KEY, limits, case["amount"])
        await limiter.flush()  # settles are deferred to ride along; send it now
    await limiter.close()
    state = await stored(client, limiter, case)
    assert_close(state.level, case["level"])
    assert_close(state.stamp, case["stamp"])


# Each limit as a client sees it, the same through both limiters.


async def test_requests_per_minute(make, clock):
    limiter = make()
    limits = Limits(rpm=3)  # one request back every 20 s
    answers = [await limiter.admit(KEY, limits, 0, f"r{i}") for i in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert answers[0].headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "20s",
    }
    refused = answers[3]
    assert (refused.kind, refused.retry_after) == ("requests", pytest.approx(20))
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "1m0s"
    clock.now += 20
    assert (await limiter.admit(KEY, limits, 0, "r4")).allowed


async def test_tokens_per_minute_settle_and_debt(make, clock):
    limiter = make()
    limits = Limits(tpm=600)  # 10 tokens per second
    first = await limiter.admit(KEY, limits, 500, "a")
    assert first.allowed
    assert first.headers["x-ratelimit-remaining-tokens"] == "100"
    assert first.headers["x-ratelimit-reset-tokens"] == "50s"
    refused = await limiter.admit(KEY, limits, 200, "b")
    assert (refused.allowed, refused.kind, refused.retry_after) == (False, "tokens", 10)
    await limiter.settle(KEY, limits, -300)  # used 200 of the 500 estimated
    assert (await limiter.admit(KEY, limits, 200, "c")).headers[
        "x-ratelimit-remaining-tokens"
    ] == "200"
    await limiter.settle(KEY, limits, 500)  # used far more than estimated: a debt of 300
    in_debt = await limiter.admit(KEY, limits, 0, "d")
    assert (in_debt.allowed, in_debt.retry_after) == (False, pytest.approx(30))
    assert in_debt.headers["x-ratelimit-remaining-tokens"] == "0"
    assert in_debt.headers["x-ratelimit-reset-tokens"] == "1m30s"


async def test_estimate_above_capacity_can_never_pass(make):
    limiter = make()
    refused = await limiter.admit(KEY, Limits(rpm=10, tpm=1000), 1001, "a")
    assert (refused.allowed, refused.kind, refused.retry_after) == (False, "tokens", None)
    assert refused.headers["x-ratelimit-remaining-requests"] == "10"


async def test_concurrency_release_returns_the_slot(make):
    limiter = make()
    limits = Limits(concurrency=2)
    assert (await limiter.admit(KEY, limits, 0, "a")).allowed
    assert (await limiter.admit(KEY, limits, 0, "b")).allowed
    refused = await limiter.admit(KEY, limits, 0, "c")
    assert (refused.allowed, refused.kind, refused.retry_after) == (False, "concurrency", 1.0)
    assert refused.headers == {}  # no rpm or tpm, no headers
    await limiter.release(KEY, limits, "a")
    await limiter.release(KEY, limits, "never-admitted")  # harmless
    assert (await limiter.admit(KEY, limits, 0, "c")).allowed
    assert not (await limiter.admit(KEY, limits, 0, "d")).allowed


async def test_expired_leases_are_pruned(make, clock):
    limiter = make(lease_ttl=10)
    limits = Limits(concurrency=2)
    for lease in ("crashed-1", "crashed-2"):  # taken, never released
        assert (await limiter.admit(KEY, limits, 0, lease)).allowed
    clock.now += 9.9
    assert not (await limiter.admit(KEY, limits, 0, "c")).allowed
    clock.now += 0.1
    assert (await limiter.admit(KEY, limits, 0, "c")).allowed
    assert (await limiter.admit(KEY, limits, 0, "d")).allowed
    assert not (await limiter.admit(KEY, limits, 0, "e")).allowed


async def test_a_renewed_lease_outlives_its_ttl(make, clock):
    limiter = make(lease_ttl=10)
    assert limiter.lease_ttl == 10
    limits = Limits(concurrency=1)
    assert (await limiter.admit(KEY, limits, 0, "session")).allowed
    for _ in range(3):  # a session an hour long renews every third of the ttl
        clock.now += 4
        await limiter.renew(KEY, limits, "session")
    assert not (await limiter.admit(KEY, limits, 0, "other")).allowed
    clock.now += 10  # no renewal for a whole ttl: the lease lapses, as a crashed router's
    assert (await limiter.admit(KEY, limits, 0, "other")).allowed


async def test_renewing_never_opens_a_lease(make, clock):
    limiter = make(lease_ttl=10)
    limits = Limits(concurrency=1)
    assert (await limiter.admit(KEY, limits, 0, "a")).allowed
    await limiter.release(KEY, limits, "a")
    if isinstance(limiter, RedisLimiter):
        await limiter.flush()  # the release is deferred to ride along; send it now
    await limiter.renew(KEY, limits, "a")  # released: stays released
    await limiter.renew(KEY, limits, "never-admitted")
    assert (await limiter.admit(KEY, limits, 0, "b")).allowed


async def test_limits_of_none_are_unlimited(make):
    limiter = make()
    for i in range(100):
        admission = await limiter.admit(KEY, Limits(), 10**9, f"r{i}")
        assert admission == Admission(allowed=True, kind=None, retry_after=None, headers={})
    await limiter.settle(KEY, Limits(rpm=1), 100)  # no tpm: nothing to settle
    await limiter.release(KEY, Limits(rpm=1), "r0")  # no concurrency: nothing to release
    await limiter.close()


@pytest.mark.parametrize(
    ("limits", "kind"),
    [
        (Limits(rpm=0), "requests"),
        (Limits(tpm=0), "tokens"),
        (Limits(concurrency=0), "concurrency"),
    ],
    ids=str,
)
async def test_a_zero_limit_refuses_everything_for_ever(make, clock, limits, kind):
    limiter = make()
    for cost in (0, 1):  # even a request estimated at no tokens
        refused = await limiter.admit(KEY, limits, cost, f"r{cost}")
        assert (refused.allowed, refused.kind, refused.retry_after) == (False, kind, None)
    clock.now += 3600
    assert not (await limiter.admit(KEY, limits, 0, "later")).allowed


# All or nothing: a refusal by one limit takes from none.


async def test_tokens_refusal_takes_no_request(make):
    limiter = make()
    limits = Limits(rpm=5, tpm=100)
    assert not (await limiter.admit(KEY, limits, 150, "a")).allowed
    assert (await limiter.admit(KEY, limits, 60, "b")).allowed
    refused = await limiter.admit(KEY, limits, 60, "c")
    assert refused.kind == "tokens"
    assert refused.headers["x-ratelimit-remaining-requests"] == "4"  # only "b" was taken
    assert refused.headers["x-ratelimit-remaining-tokens"] == "40"


async def test_concurrency_refusal_takes_no_request_or_tokens(make):
    limiter = make()
    limits = Limits(rpm=5, tpm=100, concurrency=1)
    assert (await limiter.admit(KEY, limits, 10, "a")).allowed
    refused = await limiter.admit(KEY, limits, 10, "b")
    assert refused.kind == "concurrency"
    assert refused.headers["x-ratelimit-remaining-requests"] == "4"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "90"


async def test_requests_refusal_adds_no_lease(make, clock):
    limiter = make()
    limits = Limits(rpm=1, concurrency=2)
    assert (await limiter.admit(KEY, limits, 0, "a")).allowed
    assert (await limiter.admit(KEY, limits, 0, "b")).kind == "requests"
    clock.now += 60
    assert (await limiter.admit(KEY, limits, 0, "c")).allowed  # "b" holds no slot


async def test_the_longest_wait_decides(make):
    limiter = make()
    limits = Limits(rpm=1, tpm=60, concurrency=1)
    assert (await limiter.admit(KEY, limits, 59, "a")).allowed
    refused = await limiter.admit(KEY, limits, 50, "b")  # requests: 60 s, tokens: 49 s
    assert (refused.kind, refused.retry_after) == ("requests", pytest.approx(60))


async def test_local_and_redis_give_identical_answers(client):
    """One script of calls through both: every Admission, headers included, is equal."""
    clocks = Clock(), Clock()
    limiters: tuple[Limiter, Limiter] = (
        LocalLimiter(clock=clocks[0], lease_ttl=30),
        RedisLimiter(client, clock=clocks[1], timeout=CHECKED, lease_ttl=30),
    )
    limits = Limits(rpm=5, tpm=1000, concurrency=3)
    answers: tuple[list[Admission], list[Admission]] = ([], [])
    for limiter, clock, seen in zip(limiters, clocks, answers, strict=True):
        for step in range(40):
            clock.now += 1.1
            seen.append(await limiter.admit(KEY, limits, 97 * (step % 5), f"l{step}"))
            if step % 3 == 0:
                await limiter.release(KEY, limits, f"l{step}")
            if step % 4 == 0:
                await limiter.settle(KEY, limits, (-1) ** step * 60)
            if isinstance(limiter, RedisLimiter):
                # Deferred work would otherwise be applied at the next admission's time: a
                # refund and a refill commute except at the capacity clamp. Same instant here.
                await limiter.flush()
    await limiters[1].close()
    assert answers[0] == answers[1]
    assert {a.kind for a in answers[0]} == {None, "requests", "tokens", "concurrency"}


# Redis specifics: key layout, expiry, server time, races between routers.


async def test_keys_share_one_cluster_slot(client):
    keys = RedisLimiter(client).keys("k_abc123")
    assert keys == ["sy:{k_abc123}:rpm", "sy:{k_abc123}:tpm", "sy:{k_abc123}:conc"]
    assert len({key_slot(key.encode()) for key in keys}) == 1


async def test_settle_and_release_ride_along_with_the_next_admission(client):
    """One round trip per request: deferred work goes with the key's next admit call."""
    limiter = RedisLimiter(client, timeout=CHECKED, flush_interval=3600)  # no flusher help
    limits = Limits(tpm=1000, concurrency=1)
    assert (await limiter.admit(KEY, limits, 900, "a")).allowed
    await limiter.release(KEY, limits, "a")
    await limiter.settle(KEY, limits, -880)  # used 20 of the 900 estimated
    assert await client.zcard(limiter.keys(KEY)[2]) == 1  # not sent yet
    admission = await limiter.admit(KEY, limits, 900, "b")  # carries the release and refund
    assert admission.allowed
    assert int(admission.headers["x-ratelimit-remaining-tokens"]) >= 1000 - 20 - 900
    assert await client.zrange(limiter.keys(KEY)[2], 0, -1) == [b"b"]
    await limiter.close()
    assert await client.zcard(limiter.keys(KEY)[2]) == 1  # close flushed nothing it should not


async def test_a_request_gone_during_admission_gives_its_slot_back(client):
    """A client that disconnects while its admission is on the way to Redis: the call still
    goes out (it carries deferred work), and the lease it took comes back."""
    limiter = RedisLimiter(client, timeout=CHECKED)
    limits = Limits(concurrency=1)
    gone = asyncio.ensure_future(limiter.admit(KEY, limits, 0, "gone"))
    await asyncio.sleep(0)  # queued for the next round trip
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    deadline = time.monotonic() + 5
    while not (await limiter.admit(KEY, limits, 0, "next")).allowed:
        assert time.monotonic() < deadline, "the abandoned lease still holds the slot"
        await asyncio.sleep(0.01)  # polling with a deadline
    assert await client.zrange(limiter.keys(KEY)[2], 0, -1) == [b"next"]
    await limiter.close()


async def test_idle_keys_expire_once_full(client):
    limiter = RedisLimiter(client, timeout=CHECKED, lease_ttl=30)
    await limiter.admit(KEY, Limits(rpm=60, tpm=600, concurrency=1), 300, "a")
    rpm, tpm, conc = limiter.keys(KEY)
    assert 1000 < await client.pttl(rpm) <= 2000  # full again in 1 s, plus a 1 s margin
    assert 30_000 < await client.pttl(tpm) <= 31_000  # 300 tokens at 10/s, plus the margin
    assert 30_000 < await client.pttl(conc) <= 31_000  # the lease ttl, plus the margin


async def test_redis_server_clock_is_used_without_a_clock(client):
    limiter = RedisLimiter(client, timeout=CHECKED)
    limits = Limits(rpm=2)
    assert (await limiter.admit(KEY, limits, 0, "a")).allowed
    assert (await limiter.admit(KEY, limits, 0, "b")).allowed
    refused = await limiter.admit(KEY, limits, 0, "c")
    assert refused.retry_after is not None
    assert 29 < refused.retry_after <= 30  # 1 request per 30 s, a few µs already refilled
    seconds, micros = await client.time()
    stamp = float(await client.hget(limiter.keys(KEY)[0], "stamp"))
    assert abs(stamp - (seconds + micros / 1e6)) < 5


@pytest.mark.parametrize(
    ("limits", "allowed"), [(Limits(rpm=60), 60), (Limits(concurrency=7), 7)], ids=str
)
async def test_two_routers_never_admit_more_than_the_limit(private_redis, clock, limits, allowed):
    clients = [redis.asyncio.Redis.from_url(private_redis.url) for _ in range(2)]
    try:
        await clients[0].flushdb()
        routers = [RedisLimiter(c, clock=clock, timeout=CHECKED) for c in clients]
        answers = await asyncio.gather(
            *(routers[i % 2].admit(KEY, limits, 1, f"r{i}") for i in range(200))
        )
    finally:
        for c in clients:
            await c.aclose()
    assert sum(a.allowed for a in answers) == allowed


# Redis failing: bounded, reported, and recovered from.


class Errors(list[BaseException]):
    """An on_error callback that remembers what it was told (and which operation failed)."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: list[str] = []

    def __call__(self, exc: BaseException, operation: str) -> None:
        self.append(exc)
        self.operations.append(operation)


@pytest.fixture
def lonely() -> Iterator[RedisServer]:
    """A server of the test's own, to stop and start."""
    with RedisServer() as running:
        yield running


@pytest.fixture
async def lonely_client(lonely) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(lonely.url)
    yield connection
    await connection.aclose()


async def timed(call) -> tuple[float, object]:
    start = time.monotonic()
    result = await call
    return time.monotonic() - start, result


async def test_redis_down_fails_open_within_the_timeout(lonely, lonely_client):
    errors = Errors()
    limiter = RedisLimiter(lonely_client, timeout=0.2, on_error=errors)
    limits = Limits(rpm=10, tpm=100, concurrency=1)
    assert not (await limiter.admit(KEY, limits, 1, "a")).degraded
    lonely.stop()
    elapsed, admission = await timed(limiter.admit(KEY, limits, 1, "b"))
    assert elapsed < 1.0
    assert admission == Admission(
        allowed=True, kind=None, retry_after=None, headers={}, degraded=True, failure="connection"
    )
    assert len(errors) == 1
    # settle and release never raise into the request's finally: they are deferred, and a
    # flush that fails reports it and keeps them for the next try.
    await limiter.settle(KEY, limits, 5)
    await limiter.release(KEY, limits, "a")
    elapsed, _ = await timed(limiter.flush())
    assert elapsed < 1.0
    assert errors.operations == ["admit", "flush"]
    assert "2 errors" in repr(limiter)
    lonely.start()
    await limiter.flush()  # Redis is back: the kept work goes through
    assert await lonely_client.zcard(limiter.keys(KEY)[2]) == 0
    await limiter.close()


async def test_redis_down_fails_closed_within_the_timeout(lonely, lonely_client):
    errors = Errors()
    limiter = RedisLimiter(lonely_client, timeout=0.2, fail_open=False, on_error=errors)
    lonely.stop()
    start = time.monotonic()
    with pytest.raises(LimiterUnavailable):
        await limiter.admit(KEY, Limits(rpm=10), 1, "a")
    assert time.monotonic() - start < 1.0
    assert errors.operations == ["admit"]


async def test_redis_back_is_checked_again_and_scripts_reload(lonely, lonely_client):
    limiter = RedisLimiter(lonely_client, timeout=CHECKED)
    limits = Limits(rpm=1)
    assert (await limiter.admit(KEY, limits, 0, "a")).allowed  # the script is now cached
    lonely.stop()
    down = RedisLimiter(lonely_client, timeout=0.2)
    assert (await down.admit(KEY, limits, 0, "b")).degraded
    lonely.start()  # same port, empty: no data, no scripts (NOSCRIPT on the first EVALSHA)
    assert await lonely_client.script_exists(limiter._admit.sha) == [False]
    first = await limiter.admit(KEY, limits, 0, "c")
    assert (first.allowed, first.degraded) == (True, False)
    second = await limiter.admit(KEY, limits, 0, "d")
    assert (second.allowed, second.kind, second.degraded) == (False, "requests", False)


async def test_a_silent_redis_times_out():
    """A server that accepts and never answers (a hung Redis, a black-holed network)."""
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read()  # until the client gives up and hangs up
        writer.close()

    hole = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = hole.sockets[0].getsockname()[1]
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    errors = Errors()
    try:
        limiter = RedisLimiter(client, timeout=0.1, on_error=errors)
        elapsed, admission = await timed(limiter.admit(KEY, Limits(rpm=1), 0, "a"))
    finally:
        await client.aclose()
        hole.close()
        await hole.wait_closed()
    assert elapsed < 1.0
    assert isinstance(admission, Admission)
    assert (admission.degraded, admission.failure) == (True, "timeout")
    assert [type(e) for e in errors] == [TimeoutError]
    assert connections  # it did reach the server
