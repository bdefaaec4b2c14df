"""A backend's account quota as gauges: remaining requests and tokens, reported and predicted.

Bound on the backend's first answer with ``x-ratelimit-*`` headers (a backend that never sends
them has no series, rather than a quota of 0), and set at most :data:`EVERY` seconds and
:data:`CALLS` calls apart: the request path reports on every pick and every answer read,
Prometheus scrapes every few seconds. (Counting calls too keeps the price per request the same
at any speed: under valgrind, where a request takes milliseconds, a time bound alone would set
the gauges every few requests.)
"""

from __future__ import annotations

import math

from balancers.quota import Allowance, Quota
from router.metrics.cells import GaugeChild
from router.metrics.instruments import Instruments

EVERY = 0.1
CALLS = 16


class QuotaGauges:
    """The gauges of one backend's quota."""

    __slots__ = ("_calls", "_fraction", "_gauges", "_next")

    def __init__(self, m: Instruments, model: str, backend: str) -> None:
        self._gauges: tuple[tuple[str, GaugeChild, GaugeChild], ...] = tuple(
            (
                kind,
                m.quota_remaining.labels(model, backend, kind, "reported"),
                m.quota_remaining.labels(model, backend, kind, "predicted"),
            )
            for kind in ("requests", "tokens")
        )
        self._fraction: GaugeChild = m.quota_fraction.labels(model, backend)
        self._next = 0.0
        self._calls = 0

    def update(self, quota: Quota, now: float) -> None:
        """Set the gauges from ``quota`` unless they were set less than EVERY seconds or
        CALLS calls ago."""
        if self._calls:
            self._calls -= 1
            return
        if now < self._next:
            return
        self._next = now + EVERY
        self._calls = CALLS - 1
        for kind, reported, predicted in self._gauges:
            allowance: Allowance = getattr(quota, kind)
            if not math.isnan(allowance.reported):
                reported.set(allowance.reported)
                predicted.set(max(allowance.level(now), 0.0))
        self._fraction.set(quota.fraction(now))
