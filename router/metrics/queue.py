"""A pool's wait-queue metrics: depth, wait and shed requests by priority, bound at start.

Only queued requests are recorded (a request that finds a free backend records nothing), so a
pool with a queue and no contention costs no metric call per request.
"""

from __future__ import annotations

from balancers.fairqueue import PRIORITIES, Priority
from router.metrics.cells import CounterChild, GaugeChild, HistogramChild
from router.metrics.instruments import Instruments
from router.outcomes import SHED_REASONS, ShedReason


class QueueMetrics:
    """One model's queue series, a child per priority (and reason) bound once."""

    __slots__ = ("_depth", "_shed", "_wait")

    def __init__(self, m: Instruments, model: str) -> None:
        self._depth: dict[Priority, GaugeChild] = {
            p: m.queue_depth.labels(model, p) for p in PRIORITIES
        }
        self._wait: dict[Priority, HistogramChild] = {
            p: m.queue_wait.labels(model, p) for p in PRIORITIES
        }
        self._shed: dict[tuple[Priority, ShedReason], CounterChild] = {
            (p, reason): m.queue_shed.labels(model, p, reason)
            for p in PRIORITIES
            for reason in SHED_REASONS
        }

    def queued(self, priority: Priority) -> None:
        self._depth[priority].inc()

    def left(self, priority: Priority, waited: float) -> None:
        """A queued request went on: to a backend, or to the pool-down answer."""
        self._depth[priority].dec()
        self._wait[priority].observe(waited)

    def shed(self, priority: Priority, reason: ShedReason, *, queued: bool = True) -> None:
        """A request refused (``max_depth``: never queued) or given up while queued."""
        if queued:
            self._depth[priority].dec()
        self._shed[priority, reason].inc()

    def __repr__(self) -> str:
        return "<QueueMetrics>"
