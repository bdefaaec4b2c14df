"""What the rest of the router may call on the metrics: :class:`Recorder` for the process and
:class:`BackendRecorder` for one backend of one pool.

Two implementations each: the real ones (:mod:`router.metrics.recorder`) and the ones that do
nothing (:mod:`router.metrics.off`, ``metrics.enabled: false``). The request path calls them
the same either way and never asks whether metrics are on (the null-object pattern, as
:class:`logging.NullHandler`).
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry

from balancers import Health
from balancers.fairqueue import Priority
from balancers.quota import Quota
from router.context import RequestContext
from router.limits import Admission, Limits
from router.metrics.cells import GaugeChild
from router.outcomes import AttemptFailure, ShedReason, StoreFailure


class BackendRecorder(Protocol):
    """One backend's gauges and counters."""

    # Moved once or twice by every request: the gauges themselves, not a method each that
    # moves them (a Python call costs more than the increment).
    @property
    def inflight(self) -> GaugeChild:
        """Requests to the backend in flight."""

    @property
    def open_streams(self) -> GaugeChild:
        """Streams from the backend being relayed."""

    def transition(self, old: Health, new: Health) -> None:
        """The backend's health changed (or a probe replaced a lost one)."""

    def session_opened(self) -> None:
        """A realtime session with the backend is open."""

    def session_closed(self) -> None:
        """That session is over."""

    def quota(self, quota: Quota, now: float) -> None:
        """The backend's account quota was reported or charged (gauges, set at most 10/s)."""

    def rate_limited(self) -> None:
        """The backend answered 429: its account refused."""


class QueueRecorder(Protocol):
    """One model's wait-queue series (only queued requests are recorded)."""

    def queued(self, priority: Priority) -> None:
        """A request joined the queue."""

    def left(self, priority: Priority, waited: float) -> None:
        """A queued request went on after ``waited`` seconds."""

    def shed(self, priority: Priority, reason: ShedReason, *, queued: bool = True) -> None:
        """A request refused by the queue (``queued=False``: it never got in), or given up."""


class Recorder(Protocol):
    """The process's metrics, as the request path and the app's resources record them."""

    @property
    def registry(self) -> CollectorRegistry | None:
        """What ``/metrics`` renders; None when metrics are off (no endpoint then)."""

    def bind_backend(self, model: str, backend: str) -> BackendRecorder:
        """The recorder of one backend of ``model``'s pool (bound once, at start)."""

    def bind_queue(self, model: str) -> QueueRecorder:
        """The recorder of ``model``'s wait queue (bound once, at start)."""

    def request_done(self, ctx: RequestContext) -> None:
        """Count one finished request (called once, by the edge, however it ended)."""

    def retried(self, model: str, reason: AttemptFailure) -> None:
        """A retry within ``model``'s pool, after a failure for ``reason``."""

    def fell_back(self, model: str, fallback: str, reason: AttemptFailure) -> None:
        """The request went on from ``model`` to ``fallback``."""

    def budget_exhausted(self, model: str) -> None:
        """A retry or fallback was refused: the retry budget is spent."""

    def limit_checked(self, limits: Limits, admission: Admission) -> None:
        """One admission against a key's limits."""

    def limit_unchecked(self, reason: StoreFailure) -> None:
        """The limit store failed and the router fails closed: the request got a 503."""

    def redis_error(self, operation: str, reason: StoreFailure) -> None:
        """A rate-limiter call to Redis failed."""

    def key_store_restored(self) -> None:
        """This router restored the key store from its snapshot after a reset."""
