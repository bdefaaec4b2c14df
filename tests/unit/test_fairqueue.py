"""The wait queue's pure rules: strict priority classes, round-robin over keys, FIFO per key,
bounds, O(1) removal, deadlines; and the vacancy rules that decide whether to queue at all."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancers import BackendState, LeastInflight, Pool
from balancers.fairqueue import PRIORITIES, FairQueue, Priority
from balancers.quota import Report
from balancers.vacancy import has_room, next_rest_end, ready_in


def queue(depth: int = 1000, wait: float = 10.0) -> FairQueue[int]:
    return FairQueue(max_depth=depth, max_wait=wait)


def drain(q: FairQueue[int]) -> list[int]:
    out = []
    while (ticket := q.pop()) is not None:
        out.append(ticket.item)
    return out


def test_a_flooding_key_takes_turns_with_a_quiet_one() -> None:
    q = queue()
    for i in range(10):
        q.push(100 + i, "flood", "default", 0.0)
    q.push(1, "quiet", "default", 0.0)
    q.push(2, "quiet", "default", 0.0)
    assert drain(q)[:4] == [100, 1, 101, 2]


def test_classes_are_strict_and_fifo_within_a_key() -> None:
    q = queue()
    q.push(1, "a", "batch", 0.0)
    q.push(2, "b", "default", 0.0)
    q.push(3, "c", "interactive", 0.0)
    q.push(4, "c", "interactive", 0.0)
    assert drain(q) == [3, 4, 2, 1]


def test_full_queue_refuses_and_counts() -> None:
    q = queue(depth=2)
    assert q.push(1, "a", "default", 0.0) is not None
    assert q.push(2, "a", "default", 0.0) is not None
    assert q.full()
    assert q.push(3, "b", "interactive", 0.0) is None
    assert len(q) == 2


def test_removal_from_the_middle_frees_the_place() -> None:
    q = queue(depth=3)
    tickets = [q.push(i, "a", "default", 0.0) for i in range(3)]
    assert tickets[1] is not None
    assert q.remove(tickets[1])
    assert not q.remove(tickets[1])  # twice: already gone
    assert q.push(9, "b", "default", 0.0) is not None
    assert drain(q) == [0, 9, 2]


def test_expire_takes_the_oldest_whose_deadline_passed() -> None:
    q = queue(wait=5.0)
    q.push(1, "a", "default", 0.0)
    q.push(2, "b", "batch", 1.0)
    q.push(3, "a", "default", 2.0)
    assert [t.item for t in q.expire(5.5)] == [1]
    oldest = q.oldest()
    assert oldest is not None
    assert oldest.deadline == 6.0
    assert [t.item for t in q.expire(7.0)] == [2, 3]
    assert not q
    assert q.oldest() is None


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        FairQueue(max_depth=0, max_wait=1.0)
    with pytest.raises(ValueError, match="max_wait"):
        FairQueue(max_depth=1, max_wait=0.0)


ops = st.lists(
    st.tuples(
        st.sampled_from(["push", "pop", "remove"]),
        st.sampled_from(["k1", "k2", "k3", "k4"]),
        st.sampled_from(PRIORITIES),
    ),
    max_size=200,
)


@given(ops, st.integers(min_value=1, max_value=30))
@settings(max_examples=300, deadline=None)
def test_model_invariants(steps: list[tuple[str, str, Priority]], depth: int) -> None:
    """Against a plain list model: the depth bound, counts per class, no ticket lost or served
    twice, and every pop serves the highest class present, oldest first for its key."""
    q = queue(depth=depth)
    rng = random.Random(len(steps))
    live: list[tuple[int, str, Priority]] = []
    tickets = {}
    served: set[int] = set()
    for n, (op, key, priority) in enumerate(steps):
        if op == "push":
            ticket = q.push(n, key, priority, float(n))
            assert (ticket is None) == (len(live) >= depth)
            if ticket is not None:
                live.append((n, key, priority))
                tickets[n] = ticket
        elif op == "pop":
            ticket = q.pop()
            if not live:
                assert ticket is None
                continue
            assert ticket is not None
            best = min(PRIORITIES.index(p) for _, _, p in live)
            assert PRIORITIES.index(ticket.priority) == best
            same_class = [i for i, k, p in live if k == ticket.key and p == ticket.priority]
            assert ticket.item == same_class[0]  # first in, first out per key and class
            assert ticket.item not in served
            served.add(ticket.item)
            live = [entry for entry in live if entry[0] != ticket.item]
        elif live:
            victim = rng.choice(live)
            assert q.remove(tickets[victim[0]])
            live.remove(victim)
        assert len(q) == len(live)
        for p in PRIORITIES:
            assert q.depth(p) == sum(1 for _, _, c in live if c == p)


@given(st.integers(min_value=2, max_value=20), st.integers(min_value=1, max_value=5))
def test_backlogged_keys_share_evenly_whatever_they_queued(flood: int, quiet: int) -> None:
    """While both keys have requests queued, the served counts differ by at most one."""
    q = queue()
    for i in range(flood * 10):
        q.push(i, "flood", "default", 0.0)
    for i in range(quiet * 10):
        q.push(-1 - i, "quiet", "default", 0.0)
    counts: Counter[str] = Counter()
    while counts["flood"] < flood * 10 and counts["quiet"] < quiet * 10:  # both backlogged
        ticket = q.pop()
        assert ticket is not None
        counts[ticket.key] += 1
        assert abs(counts["flood"] - counts["quiet"]) <= 1


# --- vacancy ----------------------------------------------------------------------------------


def backends(*inflight: int, limit: int = 2) -> list[BackendState]:
    out = []
    for i, n in enumerate(inflight):
        state = BackendState(f"b{i}", max_inflight=limit)
        state.inflight = n
        out.append(state)
    return out


def test_room_busy_resting_and_down() -> None:
    pool = backends(2, 1)
    assert has_room(pool, 0.0)
    pool[1].inflight = 2
    assert not has_room(pool, 0.0)
    assert ready_in(pool, 0.0) == 0.0
    for state in pool:
        state.on_rate_limited(0.0, 3.0)
        state.inflight = 0  # the refused requests ended
    assert pool[0].limited
    assert not has_room(pool, 1.0)
    assert ready_in(pool, 1.0) == pytest.approx(2.0)  # resting until a quota reset
    assert next_rest_end(pool, 1.0) == pytest.approx(3.0)
    assert has_room(pool, 3.0)  # the cooldown ended: free for its probe
    pool[0].start_probe(3.0)  # each backend carries its one probe now
    pool[1].start_probe(3.0)
    assert ready_in(pool, 3.5) == 0.0  # probing after a 429: its answer is worth waiting for
    down = backends(0)
    for _ in range(3):
        down[0].on_failure(0.0)
    assert not down[0].limited
    down[0].start_probe(10.0)
    assert ready_in(down, 10.5) == math.inf  # probing after failures: still down
    down[0].on_failure(11.0)
    assert ready_in(down, 1.0) == math.inf
    assert next_rest_end(down, 1.0) is None


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3),
            st.sampled_from(["ok", "429", "fail", "probe", "quota-out", "quota-left"]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.floats(min_value=0, max_value=20),
)
def test_has_room_agrees_with_the_picks_first_tier(spec: list[tuple[int, str]], now: float) -> None:
    """``has_room`` must say yes exactly when ``Pool.pick`` would choose a backend below its
    ``max_inflight``: the queue relies on that to hand over real slots."""
    states = backends(*(n for n, _ in spec), limit=3)
    for state, (_, event) in zip(states, spec, strict=True):
        if event == "429":
            state.on_rate_limited(0.0, 5.0)
        elif event == "fail":
            for _ in range(3):
                state.on_failure(0.0)
        elif event == "probe":
            state.on_rate_limited(0.0, 1.0)
            state.start_probe(1.0)
        elif event.startswith("quota"):  # the account said: 0 (or 5) requests left until 30 s
            left = 0 if event == "quota-out" else 5
            state.report_quota(0.0, (Report(left, 30.0, 10.0), None))
    room = has_room(states, now)
    pool = Pool("m", LeastInflight(random.Random(0)), states, clock=lambda: now)
    chosen = pool.pick()
    assert room == (chosen is not None and chosen.inflight < chosen.max_inflight)


def test_an_account_out_of_quota_is_waited_for_until_it_refills() -> None:
    """Not free, not down: the queue waits (and its timer wakes) when the quota refills."""
    [state] = backends(0, limit=3)
    state.report_quota(0.0, (Report(0, 30.0, 10.0), None))  # none left; 10 a minute
    assert not has_room([state], 1.0)
    wait = ready_in([state], 1.0)
    assert 0.0 < wait < math.inf
    assert wait == state.available_in(1.0)
    assert next_rest_end([state], 1.0) == 1.0 + wait
    assert has_room([state], 1.0 + wait)  # refilled by then: free again
    state.begin()
    state.begin()
    state.begin()
    assert ready_in([state], 1.0) == 0.0  # at max_inflight too: busy, a slot frees any moment
