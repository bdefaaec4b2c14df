"""Token buckets as pure functions of a state and the time: the one definition of the math.

A bucket holds at most ``capacity`` tokens (the per-minute limit) and refills continuously at
``capacity / 60`` per second. A request takes its cost if the level covers it, so a full bucket
allows a burst of one minute's worth and never more: there is no window edge at which two
minutes' worth pass at once. Settling the real usage may push the level below zero (a debt
that later requests wait out); nothing raises it above capacity.

Time may go backwards (a wall clock set back, a skewed host): elapsed time below zero counts
as zero and the later stamp is kept, so nothing refills early.

``admit.lua`` and ``settle.lua`` implement these functions in the same order of operations;
``tests/bucket_cases.py`` is one table of cases that both must pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

PER_MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """A bucket's size; it refills from empty to full in one minute."""

    capacity: float

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.capacity / PER_MINUTE


@dataclass(frozen=True, slots=True)
class BucketState:
    """The level at time ``stamp``; below zero is a debt."""

    level: float
    stamp: float


class Take(NamedTuple):
    """The outcome of :func:`try_take`.

    ``retry_after`` is the wait until the same take would pass; None when allowed, or when no
    wait can help (the cost exceeds the capacity).
    """

    allowed: bool
    state: BucketState
    retry_after: float | None


def full(spec: BucketSpec, now: float) -> BucketState:
    """A bucket nobody has used (or idle long enough to be forgotten)."""
    return BucketState(spec.capacity, now)


def level_at(state: BucketState, spec: BucketSpec, now: float) -> BucketState:
    """The state refilled up to ``now``, capped at capacity."""
    elapsed = max(0.0, now - state.stamp)
    return BucketState(min(spec.capacity, state.level + elapsed * spec.rate), max(state.stamp, now))


def try_take(state: BucketState, spec: BucketSpec, now: float, cost: float) -> Take:
    """Take ``cost`` at ``now`` if the level covers it; otherwise take nothing."""
    current = level_at(state, spec, now)
    if cost > spec.capacity or spec.capacity == 0:  # a limit of 0 refuses even a free take
        return Take(False, current, None)
    if current.level >= cost:
        return Take(True, BucketState(current.level - cost, current.stamp), None)
    return Take(False, current, (cost - current.level) / spec.rate)


def settle(state: BucketState, spec: BucketSpec, now: float, delta: float) -> BucketState:
    """Charge ``delta`` more (refund if negative); may go into debt, never above capacity."""
    current = level_at(state, spec, now)
    return BucketState(min(spec.capacity, current.level - delta), current.stamp)


def time_to_full(state: BucketState, spec: BucketSpec, now: float) -> float:
    """Seconds from ``now`` until the bucket is full again (a stamp ahead of now waits too)."""
    ahead = max(0.0, state.stamp - now)
    if spec.rate == 0:
        return ahead
    return ahead + max(0.0, (spec.capacity - state.level) / spec.rate)
