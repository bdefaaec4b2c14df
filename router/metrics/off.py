"""Metrics switched off (``metrics.enabled: false``): every call of the recorders, doing nothing.

One object stands for "no metrics", so no caller checks for it (see :mod:`router.metrics.types`).
Stateless, so one instance of each serves every app of the process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from balancers import Health
from balancers.fairqueue import Priority
from balancers.quota import Quota
from router.context import RequestContext
from router.limits import Admission, Limits
from router.outcomes import AttemptFailure, ShedReason, StoreFailure


class GaugeOff:
    """A gauge that keeps nothing."""

    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass


_GAUGE_OFF = GaugeOff()


class BackendMetricsOff:
    """A backend's recorder that records nothing."""

    __slots__ = ()
    inflight = open_streams = _GAUGE_OFF

    def transition(self, old: Health, new: Health) -> None:
        pass

    def session_opened(self) -> None:
        pass

    def session_closed(self) -> None:
        pass

    def quota(self, quota: Quota, now: float) -> None:
        pass

    def rate_limited(self) -> None:
        pass

    def __repr__(self) -> str:
        return "<BackendMetricsOff>"


BACKEND_OFF = BackendMetricsOff()


class QueueMetricsOff:
    """A wait queue's recorder that records nothing."""

    __slots__ = ()

    def queued(self, priority: Priority) -> None:
        pass

    def left(self, priority: Priority, waited: float) -> None:
        pass

    def shed(self, priority: Priority, reason: ShedReason, *, queued: bool = True) -> None:
        pass

    def __repr__(self) -> str:
        return "<QueueMetricsOff>"


QUEUE_OFF = QueueMetricsOff()


class MetricsOff:
    """The process's recorder that records nothing and exposes nothing."""

    __slots__ = ()
    registry: CollectorRegistry | None = None

    def bind_backend(self, model: str, backend: str) -> BackendMetricsOff:
        return BACKEND_OFF

    def bind_queue(self, model: str) -> QueueMetricsOff:
        return QUEUE_OFF

    def request_done(self, ctx: RequestContext) -> None:
        pass

    def retried(self, model: str, reason: AttemptFailure) -> None:
        pass

    def fell_back(self, model: str, fallback: str, reason: AttemptFailure) -> None:
        pass

    def budget_exhausted(self, model: str) -> None:
        pass

    def limit_checked(self, limits: Limits, admission: Admission) -> None:
        pass

    def limit_unchecked(self, reason: StoreFailure) -> None:
        pass

    def redis_error(self, operation: str, reason: StoreFailure) -> None:
        pass

    def key_store_restored(self) -> None:
        pass

    def __repr__(self) -> str:
        return "<MetricsOff>"


METRICS_OFF = MetricsOff()
