"""Strategies and the peak-EWMA load they read: plain arithmetic, a seeded rng, time by hand."""

import math
import random
from collections import Counter

import pytest

from balancers import (
    STRATEGIES,
    BackendState,
    HealthPolicy,
    LeastInflight,
    LeastLatency,
    RoundRobin,
    Weighted,
    make_strategy,
)
from balancers.state import UNSAMPLED_PENALTY


def backends(*weights: int) -> list[BackendState]:
    return [BackendState(chr(ord("a") + i), weight=w) for i, w in enumerate(weights)]


def names(picks: list[BackendState]) -> str:
    return "".join(b.name for b in picks)


# --- weighted (nginx smooth weighted round-robin) ---


@pytest.mark.parametrize("weights", [(5, 1, 1), (3, 1), (2, 3, 4), (1, 1)])
def test_weighted_cycle_exact_and_every_prefix_within_one(weights):
    pool = backends(*weights)
    strategy = Weighted()
    total = sum(weights)
    counts: Counter[str] = Counter()
    for k in range(1, 4 * total + 1):
        counts[strategy.pick(pool, 0.0).name] += 1
        for b in pool:
            assert abs(counts[b.name] - k * b.weight / total) <= 1, (k, dict(counts))
        if k % total == 0:
            assert counts == {b.name: b.weight * k // total for b in pool}


def test_weighted_interleaves_like_nginx():
    # The sequence nginx documents for weights 5,1,1 (ngx_http_upstream_round_robin.c).
    pool = backends(5, 1, 1)
    strategy = Weighted()
    assert names([strategy.pick(pool, 0.0) for _ in range(7)]) == "aabacaa"


def test_weighted_300_picks_three_to_one():
    pool = backends(3, 1)
    strategy = Weighted()
    counts = Counter(strategy.pick(pool, 0.0).name for _ in range(300))
    assert counts == {"a": 225, "b": 75}


def test_weighted_keeps_proportion_when_candidates_change():
    a, b, c = backends(2, 1, 1)
    strategy = Weighted()
    for _ in range(5):
        strategy.pick([a, b, c], 0.0)
    counts = Counter(strategy.pick([a, b], 0.0).name for _ in range(30))
    assert abs(counts["a"] - 20) <= 1
    assert abs(counts["b"] - 10) <= 1
    assert "c" in repr(strategy)


# --- round-robin ---


def test_round_robin_is_even_and_in_order():
    pool = backends(1, 1, 1)
    strategy = RoundRobin()
    picks = [strategy.pick(pool, 0.0) for _ in range(300)]
    assert names(picks[:6]) == "abcabc"
    assert Counter(names(picks)) == {"a": 100, "b": 100, "c": 100}
    assert "next=300" in repr(strategy)


# --- least-inflight ---


def test_least_inflight_prefers_idle_backend():
    a, b = backends(1, 1)
    a.inflight = 3
    strategy = LeastInflight(random.Random(1))
    assert all(strategy.pick([a, b], 0.0) is b for _ in range(50))


def test_least_inflight_respects_weights():
    a, b = backends(4, 1)
    a.inflight, b.inflight = 3, 1  # 0.75 per unit of weight against 1.0
    strategy = LeastInflight(random.Random(1))
    assert strategy.pick([a, b], 0.0) is a
    a.inflight = 5  # 1.25 against 1.0
    assert strategy.pick([a, b], 0.0) is b


def test_least_inflight_breaks_ties_at_random():
    pool = backends(1, 1, 1)
    strategy = LeastInflight(random.Random(7))
    counts = Counter(strategy.pick(pool, 0.0).name for _ in range(3000))
    assert set(counts) == {"a", "b", "c"}
    assert all(900 < n < 1100 for n in counts.values())


# --- least-latency (P2C over peak EWMA) ---


def test_least_latency_prefers_faster_backend():
    fast, slow = backends(1, 1)
    fast.observe(0.01, now=0.0)
    slow.observe(0.2, now=0.0)
    strategy = LeastLatency(random.Random(3))
    counts = Counter(strategy.pick([fast, slow], 1.0).name for _ in range(1000))
    assert counts["a"] > 900


def test_least_latency_prefers_faster_among_many():
    pool = backends(1, 1, 1, 1)
    for b, rtt in zip(pool, (0.01, 0.2, 0.2, 0.2), strict=True):
        b.observe(rtt, now=0.0)
    strategy = LeastLatency(random.Random(3))
    counts = Counter(strategy.pick(pool, 0.0).name for _ in range(1000))
    # The fast one wins every pair it is drawn into: half of all pairs of four.
    assert counts["a"] == max(counts.values())
    assert 400 < counts["a"] < 600


def test_least_latency_probes_slow_backend_after_its_estimate_decays():
    fast, slow = backends(1, 1)
    fast.observe(0.01, now=0.0)
    slow.observe(0.2, now=0.0)
    strategy = LeastLatency(random.Random(3))
    assert strategy.pick([fast, slow], 0.0) is fast
    # A minute later the fast backend is still answering in 10 ms, but nobody has asked the
    # slow one: 0.2 * exp(-60/10) ~ 0.0005 s, so it looks cheapest and gets tried again.
    fast.observe(0.01, now=60.0)
    assert strategy.pick([fast, slow], 60.0) is slow


def test_least_latency_weighs_inflight():
    fast, slow = backends(1, 1)
    fast.observe(0.01, now=0.0)
    slow.observe(0.2, now=0.0)
    fast.inflight = 30  # 0.01 * 31 > 0.2 * 1
    assert LeastLatency(random.Random(3)).pick([fast, slow], 0.0) is slow


def test_least_latency_single_candidate_and_distinct_pair():
    only = BackendState("only")
    strategy = LeastLatency(random.Random(0))
    assert strategy.pick([only], 0.0) is only
    a, b = backends(1, 1)
    a.observe(0.5, now=0.0)
    b.observe(0.1, now=0.0)
    # With two candidates the pair is always both, so the faster one always wins.
    assert all(strategy.pick([a, b], 0.0) is b for _ in range(200))


# --- peak EWMA ---


def test_peak_ewma_takes_the_peak_at_once():
    b = BackendState("a", policy=HealthPolicy(decay=10.0))
    b.observe(0.1, now=0.0)
    assert b.load(0.0) == pytest.approx(0.1)
    b.observe(1.0, now=1.0)
    assert b.load(1.0) == pytest.approx(1.0)


def test_peak_ewma_lower_samples_pull_down_gradually():
    b = BackendState("a", policy=HealthPolicy(decay=10.0))
    b.observe(1.0, now=0.0)
    b.observe(0.1, now=10.0)
    w = math.exp(-1.0)
    assert b.latency(10.0) == pytest.approx(1.0 * w + 0.1 * (1 - w))


def test_peak_ewma_decays_toward_zero_without_samples():
    b = BackendState("a", policy=HealthPolicy(decay=10.0))
    b.observe(1.0, now=5.0)
    assert b.load(15.0) == pytest.approx(math.exp(-1.0))
    assert b.load(105.0) < 1e-4
    assert b.load(15.0) == pytest.approx(math.exp(-1.0))  # reading does not mutate


def test_load_scales_with_inflight():
    b = BackendState("a")
    b.observe(0.2, now=0.0)
    b.begin()
    b.begin()
    assert b.load(0.0) == pytest.approx(0.6)


def test_unsampled_backend_is_free_while_idle_but_not_flooded():
    new = BackendState("new")
    assert new.load(0.0) == 0.0  # so a new backend gets tried
    new.begin()
    # Finagle's PeakEwma penalty: until its first response, one request at a time.
    assert new.load(0.0) == UNSAMPLED_PENALTY + 1


# --- registry ---


@pytest.mark.parametrize("name", ["least-latency", "weighted", "round-robin", "least-inflight"])
def test_registry_builds_each_by_name(name):
    strategy = make_strategy(name, random.Random(0))
    assert strategy.name == name
    assert STRATEGIES[name](random.Random(0)).name == name
    assert name in repr(strategy)


def test_registry_rejects_unknown_name_listing_valid_ones():
    with pytest.raises(ValueError, match="'fastest'") as info:
        make_strategy("fastest", random.Random(0))
    message = str(info.value)
    for name in STRATEGIES:
        assert name in message


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        STRATEGIES["x"] = STRATEGIES["weighted"]  # type: ignore[index]
