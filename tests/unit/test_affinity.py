"""The affinity ring (consistent hashing with bounded loads) and the prompt-cache key."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from balancers import BackendState, HealthPolicy, Pool, Ring, key_hash, make_strategy
from router.cachekey import cache_key

NAMES = [f"backend-{i}" for i in range(8)]
keys = st.integers(min_value=0, max_value=2**64 - 1)


def states(count: int, weights: list[int] | None = None) -> list[BackendState]:
    weights = weights or [1] * count
    return [BackendState(NAMES[i], weight=weights[i]) for i in range(count)]


@settings(max_examples=50, deadline=None)
@given(count=st.integers(2, 6), gone=st.integers(0, 5), sample=st.lists(keys, max_size=200))
def test_a_leaving_backend_moves_only_its_keys(count: int, gone: int, sample: list[int]) -> None:
    gone %= count
    full = states(count)
    before = Ring(full)
    after = Ring([b for i, b in enumerate(full) if i != gone])
    for key in sample:
        owner = before.owner(key)
        if owner is not full[gone]:
            assert after.owner(key) is owner


@settings(max_examples=50, deadline=None)
@given(count=st.integers(1, 6), sample=st.lists(keys, max_size=200))
def test_a_joining_backend_takes_keys_only_for_itself(count: int, sample: list[int]) -> None:
    full = states(count + 1)
    before, after = Ring(full[:count]), Ring(full)
    for key in sample:
        assert after.owner(key) in (before.owner(key), full[count])


@settings(max_examples=50, deadline=None)
@given(
    count=st.integers(2, 6),
    sample=st.lists(keys, min_size=1, max_size=300),
    balance=st.floats(1.0, 2.0),
)
def test_no_backend_exceeds_the_load_bound(count: int, sample: list[int], balance: float) -> None:
    """Requests that all stay in flight (the worst case, a hot key among them): every pick
    keeps each backend within ceil(c * (load + 1) / n)."""
    backends = states(count)
    ring = Ring(backends, balance=balance)
    for key in sample:
        total = sum(b.inflight for b in backends)
        chosen = ring.pick(key, backends)
        assert chosen is not None  # all candidates: the bounds sum to more than the load
        assert chosen.inflight + 1 <= math.ceil(balance * (total + 1) / count)
        chosen.begin()


def test_a_hot_key_spills_over_instead_of_overloading() -> None:
    backends = states(4)
    ring = Ring(backends)
    for _ in range(400):
        chosen = ring.pick(key_hash(b"hot"), backends)
        assert chosen is not None
        chosen.begin()
    loads = sorted(b.inflight for b in backends)
    assert loads[-1] <= math.ceil(1.25 * 400 / 4)
    assert ring.hits > 0
    assert ring.misses > 0


@settings(max_examples=50, deadline=None)
@given(count=st.integers(1, 6), key=keys, excluded=st.sets(st.integers(0, 5)))
def test_only_candidates_are_picked(count: int, key: int, excluded: set[int]) -> None:
    backends = states(count)
    allowed = [b for i, b in enumerate(backends) if i not in excluded]
    chosen = Ring(backends).pick(key, allowed)
    assert chosen is None or chosen in allowed
    if allowed:
        assert chosen is not None  # nothing in flight: every candidate has room


def test_keys_spread_by_weight() -> None:
    backends = states(3, [1, 1, 2])
    ring = Ring(backends)
    owners = Counter(ring.owner(key_hash(str(i).encode())).name for i in range(20_000))
    shares = [owners[b.name] / 20_000 for b in backends]
    assert abs(shares[0] - 0.25) < 0.05
    assert abs(shares[1] - 0.25) < 0.05
    assert abs(shares[2] - 0.50) < 0.05


def test_pool_prefers_the_key_owner_and_falls_back_when_it_is_ejected() -> None:
    policy = HealthPolicy(failures_to_eject=1, base_cooldown=5.0, max_cooldown=60.0)
    backends = [BackendState(name, policy=policy) for name in NAMES[:3]]
    ring = Ring(backends)
    pool = Pool("m", make_strategy("round-robin", random.Random(0)), backends, clock=lambda: 10.0)
    pool.ring = ring
    key = key_hash(b"conversation-1")
    owner = ring.owner(key)
    assert {pool.pick(affinity=key) for _ in range(10)} == {owner}
    owner.on_failure(10.0)  # ejected for 5 s
    other = pool.pick(affinity=key)
    assert other is not None
    assert other is not owner
    assert pool.pick(affinity=key) is other  # the next on the ring: again one place
    for backend in backends:
        if backend is not owner:
            backend.inflight = backend.max_inflight  # saturated: the pool still answers
    assert pool.pick(affinity=key) is not None


def test_cache_key_order_and_stable_prefix() -> None:
    opening = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
    ]
    base: dict[str, Any] = {
        "messages": opening,
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    later = {
        **base,
        "messages": [
            *opening,
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "second question"},
        ],
    }
    assert cache_key("chat", base) == cache_key("chat", later)  # every turn, one key
    other_system = {**base, "messages": [{"role": "system", "content": "Be verbose."}]}
    assert cache_key("chat", other_system) != cache_key("chat", base)
    assert cache_key("chat", {**base, "tools": []}) != cache_key("chat", base)
    assert cache_key("chat", {**base, "user": "u1"}) == cache_key("chat", {"user": "u1"})
    assert cache_key("chat", {**base, "user": "u1", "prompt_cache_key": "k"}) == cache_key(
        "responses", {"prompt_cache_key": "k"}
    )
    assert cache_key("chat", {"safety_identifier": "s"}) != cache_key("chat", {"user": "s"})
    assert cache_key("embeddings", {"input": "x"}) is None
    assert cache_key("chat", {"messages": []}) is None
    responses = {"instructions": "Be kind.", "input": [{"role": "user", "content": "hi"}]}
    longer = {**responses, "input": [*responses["input"], {"role": "user", "content": "more"}]}
    assert cache_key("responses", responses) == cache_key("responses", longer)
    assert cache_key("responses", {"input": "hi"}) != cache_key("responses", responses)
