"""An account's quota as the balancer predicts it, and the pick that plans with it."""

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from balancers import BackendState, Pool, make_strategy
from balancers.quota import STALE_AFTER, Quota, Report

NOW = 100.0


def openai_quota(remaining: float, limit: float = 600, reset: float | None = None) -> Quota:
    """An account of ``limit`` requests a minute (10/s) reporting ``remaining`` at NOW."""
    quota = Quota()
    if reset is None:
        reset = (10 - remaining) / (limit / 60)  # a 10-request bucket, as the fake's window=1
    quota.report(NOW, (Report(remaining, reset, limit), None))
    return quota


def test_nothing_known_means_room_and_full_share():
    quota = Quota()
    assert quota.has_room(NOW, 10**9)
    assert quota.fraction(NOW) == 1.0
    assert quota.available_in(NOW, 10) == 0.0


def test_refills_at_the_limit_per_minute_until_full():
    quota = openai_quota(remaining=4)
    assert quota.requests.capacity == pytest.approx(10)
    assert quota.requests.level(NOW + 0.2) == pytest.approx(6)
    assert quota.requests.level(NOW + 5) == pytest.approx(10)  # never past the bucket
    assert quota.fraction(NOW) == pytest.approx(0.4)


def test_charges_at_the_pick_until_the_account_speaks_again():
    quota = openai_quota(remaining=2)
    quota.charge(NOW, 0)
    quota.charge(NOW, 0)
    assert not quota.has_room(NOW, 0)
    assert quota.available_in(NOW, 0) == pytest.approx(0.1)  # one request refills in 100 ms
    assert quota.has_room(NOW + 0.1, 0)
    quota.report(NOW + 0.01, (Report(5, 0.5, 600), None))  # the account's word wins
    assert quota.requests.level(NOW + 0.01) == pytest.approx(5)


def test_tokens_need_room_for_the_estimate():
    quota = Quota()
    quota.report(NOW, (None, Report(1000, 2.0, 60_000)))  # 1,000 tokens/s
    assert quota.has_room(NOW, 1000)
    assert not quota.has_room(NOW, 1001)
    assert quota.available_in(NOW, 1500) == pytest.approx(0.5)
    quota.charge(NOW, 800)
    assert quota.tokens.level(NOW) == pytest.approx(200)
    assert quota.requests.capacity == math.inf  # requests never reported: not a constraint


def test_azure_remaining_without_reset_holds_for_a_moment():
    quota = Quota()
    quota.report(NOW, (Report(0, None, None), Report(50, None, None)))
    assert not quota.has_room(NOW, 0)
    assert quota.available_in(NOW, 0) == pytest.approx(STALE_AFTER)
    assert quota.has_room(NOW + STALE_AFTER, 0)


def test_a_negative_debt_reads_as_no_share():
    quota = openai_quota(remaining=0)
    quota.charge(NOW, 0)
    assert quota.fraction(NOW) == 0.0


# --- the pick ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def pool_of(strategy: str, n: int = 2) -> tuple[Pool, list[BackendState], Clock]:
    clock = Clock()
    backends = [BackendState(name) for name in "abcd"[:n]]
    pool = Pool("gpt-4o", make_strategy(strategy, random.Random(1)), backends, clock=clock)
    return pool, backends, clock


@pytest.mark.parametrize("strategy", ["least-latency", "weighted", "round-robin", "least-inflight"])
def test_an_account_out_of_quota_is_passed_over_until_its_reset(strategy: str):
    pool, (a, b), clock = pool_of(strategy)
    a.quota = openai_quota(remaining=0)
    assert all(pool.pick() is b for _ in range(20))
    assert pool.quota_wait() is not None
    clock.now += a.available_in(clock.now)
    assert a in {pool.pick() for _ in range(20)}


def test_no_account_with_room_means_no_pick_and_a_wait():
    pool, (a, b), _ = pool_of("least-latency")
    a.quota = openai_quota(remaining=0)
    b.quota = openai_quota(remaining=0, reset=0.3)
    assert pool.pick() is None
    assert pool.quota_wait() == pytest.approx(min(a.available_in(NOW), b.available_in(NOW)))


def test_tokens_estimate_decides_room():
    pool, (a, b), _ = pool_of("round-robin")
    a.quota, b.quota = Quota(), Quota()
    a.quota.report(NOW, (None, Report(100, 1.0, 60_000)))
    b.quota.report(NOW, (None, Report(5000, 1.0, 60_000)))
    assert {pool.pick(tokens=500) for _ in range(4)} == {b}
    assert {pool.pick(tokens=50) for _ in range(4)} == {a, b}


def test_the_pick_charges_the_account():
    pool, (a,), _ = pool_of("round-robin", n=1)
    a.quota = openai_quota(remaining=3)
    assert [pool.pick() for _ in range(4)] == [a, a, a, None]


@pytest.mark.parametrize("strategy", ["least-latency", "weighted"])
def test_traffic_shifts_away_as_an_account_nears_its_limit(strategy: str):
    """Not only once it is out: an account at 20% of its quota gets far less than one at
    100%, though both have room."""
    pool, (a, b), _ = pool_of(strategy)
    for backend in (a, b):
        backend.observe(0.05, NOW)
    picks = []
    for _ in range(100):
        a.quota = openai_quota(remaining=2, reset=0.8)  # reported anew: 20% left
        b.quota = openai_quota(remaining=10, reset=0.0)  # full
        picks.append(pool.pick())
    assert picks.count(a) <= 25


def test_available_in_counts_the_cooldown_too():
    _, (a, _), _ = pool_of("round-robin")
    a.on_rate_limited(NOW, 3.0)
    assert a.available_in(NOW) == pytest.approx(3.0)
    a.quota = openai_quota(remaining=0, reset=6.0)  # one request back in 0.1 s: cooldown rules
    assert a.available_in(NOW) == pytest.approx(3.0)
    a.quota = openai_quota(remaining=0, limit=6, reset=60.0)  # one back in 10 s: quota rules
    assert a.available_in(NOW) == pytest.approx(10.0)


@given(
    st.lists(st.tuples(st.integers(0, 20), st.floats(0, 5), st.booleans()), min_size=1, max_size=4),
    st.integers(0, 3000),
    st.sampled_from(["least-latency", "weighted", "round-robin", "least-inflight"]),
)
def test_the_pick_never_chooses_an_account_without_room(accounts, tokens, strategy):
    """Whatever the accounts report, a pick is an account with room for the request, and
    there is no pick only when no account has room."""
    pool, backends, _ = pool_of(strategy, n=len(accounts))
    for backend, (remaining, reset, tokens_too) in zip(backends, accounts, strict=False):
        backend.quota = Quota()
        tokens_report = Report(remaining * 100, reset, 60_000) if tokens_too else None
        backend.quota.report(NOW, (Report(remaining, reset, 600), tokens_report))
    for _ in range(5):
        room = {b for b in backends if b.quota is not None and b.quota.has_room(NOW, tokens)}
        chosen = pool.pick(tokens=tokens)
        assert chosen in room if room else chosen is None
