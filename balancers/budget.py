"""A retry budget, after Finagle's ``RetryBudget`` (``TokenRetryBudget`` over a
``WindowedAdder``).

Retries are what turn a slow upstream into a dead one: if every client retries every failure,
an overloaded backend sees its load multiplied exactly when it can least take it. The budget caps
retries at a fraction of recent original requests, plus a small floor so that a quiet service can
still retry at all::

    retries in the last `window` <= percent * requests in the last `window`
                                    + min_per_second * window
"""

from __future__ import annotations

import math
from collections.abc import Callable

# One token = 1 / _SCALE of a retry. Integer tokens keep the running sum exact however long the
# process lives; Finagle scales by 1000 for the same reason, we keep a finer grain for `percent`.
_SCALE = 1_000_000
# Finagle's WindowedAdder default: ten slices, so the window slides in tenths.
_SLICES = 10


class _WindowedCounter:
    """A sum over the last ``window`` seconds, kept in ``_SLICES`` time buckets.

    Buckets are expired lazily on each call; at most ``_SLICES`` are cleared, so every call is
    O(1) however long the counter sat idle.
    """

    __slots__ = ("_buckets", "_epoch", "_total", "_width")

    def __init__(self, window: float, now: float) -> None:
        self._width = window / _SLICES
        self._buckets = [0] * _SLICES
        self._epoch = math.floor(now / self._width)
        self._total = 0

    def add(self, amount: int, now: float) -> None:
        epoch = math.floor(now / self._width)
        if epoch > self._epoch:  # else the same bucket, or a clock that stepped back: keep it
            self._expire(epoch)
        self._buckets[self._epoch % _SLICES] += amount
        self._total += amount

    def total(self, now: float) -> int:
        epoch = math.floor(now / self._width)
        if epoch > self._epoch:
            self._expire(epoch)
        return self._total

    def _expire(self, epoch: int) -> None:
        """Move on to ``epoch``'s bucket, clearing the buckets passed on the way."""
        steps = epoch - self._epoch
        if steps >= _SLICES:
            self._buckets = [0] * _SLICES
            self._total = 0
        else:
            for offset in range(1, steps + 1):
                index = (self._epoch + offset) % _SLICES
                self._total -= self._buckets[index]
                self._buckets[index] = 0
        self._epoch = epoch


class RetryBudget:
    """Allows retries up to ``percent`` of recent requests plus ``min_per_second``.

    Deposits and withdrawals share one windowed counter, as in Finagle: each original request
    deposits ``percent`` of a retry, each retry withdraws a whole one, and a standing reserve of
    ``min_per_second * window`` retries is always added. Both deposits and withdrawals expire
    with the window, so an exhausted budget recovers once the window has passed.
    """

    __slots__ = (
        "_clock",
        "_counter",
        "_deposit",
        "_reserve",
        "min_per_second",
        "percent",
        "window",
    )

    def __init__(
        self,
        *,
        percent: float = 0.2,
        window: float = 10.0,
        min_per_second: float = 1.0,
        clock: Callable[[], float],
    ) -> None:
        # Finagle's defaults: 20% of requests, 10 s ttl, 10 retries/s floor. Our upstreams are
        # slow and expensive, so the floor is one retry per second.
        if percent < 0.0:
            raise ValueError(f"percent must be >= 0, got {percent}")
        if window <= 0.0:
            raise ValueError(f"window must be > 0, got {window}")
        if min_per_second < 0.0:
            raise ValueError(f"min_per_second must be >= 0, got {min_per_second}")
        self.percent = percent
        self.window = window
        self.min_per_second = min_per_second
        self._clock = clock
        self._deposit = round(percent * _SCALE)
        self._reserve = round(min_per_second * window * _SCALE)
        self._counter = _WindowedCounter(window, clock())

    def deposit(self) -> None:
        """Record one original request (call once per request, not per attempt)."""
        self._counter.add(self._deposit, self._clock())

    def try_withdraw(self) -> bool:
        """Take one retry from the budget; False means exhausted, so do not retry."""
        now = self._clock()
        if self._counter.total(now) + self._reserve < _SCALE:
            return False
        self._counter.add(-_SCALE, now)
        return True

    def balance(self) -> float:
        """Retries currently available (may be fractional)."""
        return (self._counter.total(self._clock()) + self._reserve) / _SCALE

    def __repr__(self) -> str:
        return (
            f"<RetryBudget {self.balance():.1f} retries left"
            f" ({self.percent:.0%} of {self.window:g}s + {self.min_per_second:g}/s)>"
        )
