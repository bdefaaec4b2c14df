"""Declared account limits in both limiters (in process, and one Lua call against a real
private Redis): checked with the key's own limits, the first account with room charged, none
charged at all when every account is full."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from router.limits import Account, Limiter, Limits, LocalLimiter
from router.limits.redis import RedisLimiter
from tests.redis_server import RedisServer

KEY = "k_test"
SMALL = Account("account:small", Limits(rpm=2))
BIG = Account("account:big", Limits(rpm=60, tpm=600))


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(private_redis: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(private_redis.url)
    await connection.flushdb()
    yield connection
    await connection.aclose()


@pytest.fixture(params=["local", "redis"])
async def limiter(request, client) -> AsyncIterator[tuple[Limiter, Clock]]:
    clock = Clock()
    built: Limiter = (
        LocalLimiter(clock=clock)
        if request.param == "local"
        else RedisLimiter(client, clock=clock, timeout=5.0)
    )
    yield built, clock
    await built.close()


async def test_the_first_account_with_room_is_charged(limiter):
    limits, _ = limiter
    answers = [await limits.admit(KEY, Limits(), 10, f"r{i}", (SMALL, BIG)) for i in range(4)]
    assert [a.account for a in answers] == [0, 0, 1, 1]
    assert all(a.allowed for a in answers)
    # The levels of the accounts checked: SMALL empty after two, BIG charged 1 request, 10 tok.
    last = answers[-1].accounts
    assert last[0].requests is not None
    assert last[0].requests[0] == pytest.approx(0)
    assert last[1].requests is not None
    assert last[1].requests[0] == pytest.approx(58)
    assert last[1].tokens is not None
    assert last[1].tokens[0] == pytest.approx(580)


async def test_every_account_full_takes_nothing_and_names_the_shortest_wait(limiter):
    limits, clock = limiter
    key = Limits(rpm=100)
    for i in range(2):
        assert (await limits.admit(KEY, key, 0, f"r{i}", (SMALL,))).allowed
    refused = await limits.admit(KEY, key, 0, "r2", (SMALL,))
    assert (refused.allowed, refused.accounts_full, refused.kind) == (False, True, "requests")
    assert refused.retry_after == pytest.approx(30.0)  # 2 a minute: one back in 30 s
    # The key was not charged by the refusal: 98 of its 100 are left.
    assert refused.headers["x-ratelimit-remaining-requests"] == "98"
    clock.now += 30.0
    again = await limits.admit(KEY, key, 0, "r3", (SMALL,))
    assert (again.allowed, again.account) == (True, 0)


async def test_a_key_refused_checks_no_account(limiter):
    limits, _ = limiter
    key = Limits(rpm=1)
    assert (await limits.admit(KEY, key, 0, "a", (SMALL,))).allowed
    refused = await limits.admit(KEY, key, 0, "b", (SMALL,))
    assert (refused.allowed, refused.accounts_full, refused.kind) == (False, False, "requests")
    # SMALL still has one: the refused request took nothing from it.
    other = await limits.admit("k_other", Limits(), 0, "c", (SMALL,))
    assert (other.allowed, other.account) == (True, 0)


async def test_tokens_settle_on_the_account(limiter):
    limits, _clock = limiter
    first = await limits.admit(KEY, Limits(), 500, "a", (BIG,))
    assert first.account == 0
    await limits.settle(BIG.id, BIG.limits, -400)  # the answer used 100, not 500
    if isinstance(limits, RedisLimiter):
        await limits.flush()
    after = await limits.admit(KEY, Limits(), 0, "b", (BIG,))
    assert after.accounts[0].tokens is not None
    assert after.accounts[0].tokens[0] == pytest.approx(500)
