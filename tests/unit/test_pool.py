"""Pool.pick: which backends are candidates, and what happens when none are."""

import random

import pytest

from balancers import BackendState, Health, HealthPolicy, Pool, make_strategy

POLICY = HealthPolicy(failures_to_eject=1, base_cooldown=5.0, max_cooldown=60.0)


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_pool(
    n: int = 3, *, strategy: str = "round-robin", max_inflight: int = 256
) -> tuple[Pool, list[BackendState], FakeClock]:
    clock = FakeClock()
    backends = [
        BackendState(name, max_inflight=max_inflight, policy=POLICY) for name in "abcdefgh"[:n]
    ]
    pool = Pool("gpt-4o", make_strategy(strategy, random.Random(0)), backends, clock=clock)
    return pool, backends, clock


def test_pick_rotates_over_healthy_backends():
    pool, (a, b, c), _ = make_pool(3)
    assert [pool.pick() for _ in range(6)] == [a, b, c, a, b, c]


def test_pick_skips_excluded():
    pool, (a, b, c), _ = make_pool(3)
    picks = {pool.pick(exclude={a, c}) for _ in range(5)}
    assert picks == {b}


def test_pick_returns_none_when_all_excluded():
    pool, backends, _ = make_pool(3)
    assert pool.pick(exclude=backends) is None


def test_pick_skips_saturated_unless_all_are():
    pool, (a, b), _ = make_pool(2, max_inflight=1)
    a.begin()
    assert {pool.pick() for _ in range(4)} == {b}
    b.begin()
    # Every backend is full: pick anyway, the connection pool queues.
    assert {pool.pick() for _ in range(4)} == {a, b}


def test_saturated_fallback_still_honours_exclude():
    pool, (a, b), _ = make_pool(2, max_inflight=1)
    a.begin()
    b.begin()
    assert pool.pick(exclude=(a,)) is b


def test_pick_skips_ejected_until_cooldown_then_probes_once():
    pool, (a, b), clock = make_pool(2)
    a.on_failure(clock.now)
    assert {pool.pick() for _ in range(4)} == {b}
    clock.now += 5.0
    chosen = [pool.pick() for _ in range(4)]
    assert chosen.count(a) == 1  # the probe
    assert a.health is Health.PROBING
    assert chosen.count(b) == 3


def test_probe_success_returns_backend_to_rotation():
    pool, (a, b), clock = make_pool(2)
    a.on_failure(clock.now)
    clock.now += 5.0
    pool.pick(exclude=(b,))
    a.on_success(clock.now)
    assert {pool.pick() for _ in range(4)} == {a, b}


def test_all_ejected_picks_nothing_until_a_cooldown_ends():
    pool, (a, b, c), clock = make_pool(3)
    b.on_failure(clock.now)
    clock.now += 1.0
    c.on_failure(clock.now)
    clock.now += 1.0
    a.on_failure(clock.now)
    # No backend is tried before its cooldown ends: the request fails at once instead.
    assert pool.pick() is None
    assert pool.retry_in() == 3.0  # b's cooldown, 5 s from t=100, ends first
    assert [x.health for x in (a, b, c)] == [Health.EJECTED] * 3
    clock.now = 105.0
    assert pool.retry_in() == 0.0
    assert pool.pick() is b
    assert b.health is Health.PROBING
    # b carries its one probe; c and a are still cooling down.
    assert pool.pick() is None
    assert pool.retry_in() == 1.0


def test_retry_in_is_none_while_only_probes_are_in_flight():
    pool, (a, b), clock = make_pool(2)
    assert pool.retry_in() is None
    a.on_failure(clock.now)
    b.on_failure(clock.now)
    clock.now += 5.0
    assert {pool.pick(), pool.pick()} == {a, b}
    assert pool.pick() is None
    assert pool.retry_in() is None


def test_all_ejected_honours_exclude():
    pool, (a, b), clock = make_pool(2)
    a.on_failure(clock.now)
    clock.now += 1.0
    b.on_failure(clock.now)
    clock.now += 5.0
    assert pool.pick(exclude={a}) is b


def test_pool_uses_its_strategy_over_candidates():
    pool, (a, b, c), clock = make_pool(3, strategy="least-inflight")
    a.begin()
    b.begin()
    assert pool.pick() is c
    assert clock.now == 100.0


def test_repr_shows_counts():
    pool, (a, b, c), clock = make_pool(3, strategy="least-latency")
    for _ in range(12):
        b.begin()
    a.on_failure(clock.now)
    assert repr(pool) == "<Pool gpt-4o least-latency [2 healthy, 1 ejected | 12 in flight]>"
    clock.now += 5.0
    pool.pick(exclude=(b, c))
    assert repr(pool) == (
        "<Pool gpt-4o least-latency [2 healthy, 0 ejected, 1 probing | 12 in flight]>"
    )


def test_pool_rejects_empty_and_duplicate_names():
    strategy = make_strategy("weighted", random.Random(0))
    with pytest.raises(ValueError, match="no backends"):
        Pool("p", strategy, [], clock=FakeClock())
    with pytest.raises(ValueError, match="duplicate"):
        Pool("p", strategy, [BackendState("a"), BackendState("a")], clock=FakeClock())
