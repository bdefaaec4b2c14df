"""Recording: the request path's few calls, with label children bound ahead of time.

A label lookup (``.labels(...)``) costs about a microsecond; an increment a third of that. So
each backend's series are bound once, when the route table is built (:class:`BackendMetrics`),
and each request's series once per distinct (endpoint, model, backend, status, streamed), on
first use (:mod:`router.metrics.series`). The request path then does a handful of increments,
all at the request's end in :meth:`Metrics.request_done`, which the edge calls exactly once per
request, whatever way it ended. A stream's chunks cost nothing here: its first-output time and
usage are read by the relay's tap and recorded at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry

from balancers import Health
from balancers.quota import Quota
from router.context import RequestContext
from router.limits import Admission, Limits
from router.metrics.cells import CellMaker, CounterChild, GaugeChild, HistogramChild, maker
from router.metrics.instruments import Instruments, KeyInstruments
from router.metrics.queue import QueueMetrics
from router.metrics.quota import QuotaGauges
from router.metrics.series import CellSeries, Series, SeriesKey
from router.outcomes import (
    ATTEMPT_FAILURES,
    LIMIT_KINDS,
    SESSION_ENDS,
    STORE_FAILURES,
    AttemptFailure,
    StoreFailure,
)
from router.sessionstats import SessionStats

_TRANSITIONS = {Health.EJECTED: "ejection", Health.PROBING: "probe", Health.HEALTHY: "recovery"}


class BackendMetrics:
    """One backend of one pool: its gauges, stream histograms and token counters."""

    __slots__ = (
        "_health",
        "_m",
        "_model_backend",
        "_quota",
        "_rate_limited",
        "_sessions",
        "_transitions",
        "inflight",
        "open_streams",
        "realtime",
        "stream_duration",
        "tokens_cached",
        "tokens_in",
        "tokens_out",
        "tpot",
        "ttft",
    )

    def __init__(self, m: Instruments, model: str, backend: str) -> None:
        self.inflight: GaugeChild = m.inflight.labels(model, backend)
        self.open_streams: GaugeChild = m.open_streams.labels(model, backend)
        self.ttft: HistogramChild = m.ttft.labels(model, backend)
        self.tpot: HistogramChild = m.tpot.labels(model, backend)
        self.stream_duration: HistogramChild = m.stream_duration.labels(model, backend)
        self.tokens_in: CounterChild = m.tokens.labels(model, backend, "input")
        self.tokens_out: CounterChild = m.tokens.labels(model, backend, "output")
        self.tokens_cached: CounterChild = m.cached_tokens.labels(model, backend)
        self._health = {state: m.health.labels(model, backend, state.value) for state in Health}
        self._transitions = {
            state: m.transitions.labels(model, backend, transition)
            for state, transition in _TRANSITIONS.items()
        }
        self._health[Health.HEALTHY].set(1)
        self.realtime = _SessionMetrics(m, model, backend)
        self._m = m
        self._model_backend = (model, backend)
        self._quota: QuotaGauges | None = None  # bound on the first quota report
        self._rate_limited: CounterChild = m.upstream_rate_limited.labels(model, backend)

    def transition(self, old: Health, new: Health) -> None:
        """The backend's health changed (or a probe replaced a lost one)."""
        self._health[old].set(0)
        self._health[new].set(1)
        self._transitions[new].inc()

    def session_opened(self) -> None:
        self.realtime.open.inc()

    def session_closed(self) -> None:
        self.realtime.open.dec()

    def quota(self, quota: Quota, now: float) -> None:
        gauges = self._quota
        if gauges is None:
            gauges = self._quota = QuotaGauges(self._m, *self._model_backend)
        gauges.update(quota, now)

    def rate_limited(self) -> None:
        self._rate_limited.inc()


class _SessionMetrics:
    """A backend's realtime sessions: open now, and how the ended ones went."""

    __slots__ = ("_ends", "bytes_in", "bytes_out", "duration", "frames_in", "frames_out", "open")

    def __init__(self, m: Instruments, model: str, backend: str) -> None:
        self.open: GaugeChild = m.sessions_open.labels(model, backend)
        self.duration: HistogramChild = m.session_duration.labels(model, backend)
        self.frames_in: CounterChild = m.frames.labels(model, backend, "client")
        self.frames_out: CounterChild = m.frames.labels(model, backend, "upstream")
        self.bytes_in: CounterChild = m.frame_bytes.labels(model, backend, "client")
        self.bytes_out: CounterChild = m.frame_bytes.labels(model, backend, "upstream")
        self._ends = {end: m.sessions.labels(model, backend, end) for end in SESSION_ENDS}

    def ended(self, session: SessionStats) -> None:
        if session.reason is not None:
            self._ends[session.reason].inc()
        self.duration.observe(session.duration)
        self.frames_in.inc(session.client.frames)
        self.frames_out.inc(session.upstream.frames)
        self.bytes_in.inc(session.client.bytes)
        self.bytes_out.inc(session.upstream.bytes)


class Metrics:
    """The router's metrics: bound series and the calls the request path makes."""

    def __init__(
        self,
        registry: CollectorRegistry,
        fallbacks: Mapping[str, Iterable[str]],
        *,
        key_labels: bool,
    ) -> None:
        """``fallbacks``: each public model ID and its fallback models."""
        self.registry = registry
        cells = maker(registry)
        self._cells = isinstance(cells, CellMaker)  # its series are recorded inline
        self._m = Instruments(cells)
        self._keys = KeyInstruments(cells) if key_labels else None
        self._models = frozenset(fallbacks)
        self._zeros(fallbacks)
        self._backends: dict[tuple[str, str], BackendMetrics] = {}
        self._series: dict[SeriesKey, Series | CellSeries] = {}
        self._decisions = {
            (kind, outcome): self._m.limit_decisions.labels(kind, outcome)
            for kind in LIMIT_KINDS
            for outcome in ("allowed", "refused")
        }

    def _zeros(self, fallbacks: Mapping[str, Iterable[str]]) -> None:
        """Create the rare-event series at 0, so rates read 0 rather than nothing (Prometheus
        practice for label values known in advance)."""
        m = self._m
        for model, targets in fallbacks.items():
            m.budget_exhausted.labels(model)
            for reason in ATTEMPT_FAILURES:
                m.retries.labels(model, reason)
                for fallback in targets:
                    m.fallbacks.labels(model, fallback, reason)
        for failure in STORE_FAILURES:
            m.fail_open.labels(failure)
            m.fail_closed.labels(failure)
            for operation in ("admit", "flush", "renew"):
                m.redis_errors.labels(operation, failure)
        m.key_store_restores.labels()
        self._affinity = {
            (model, hit): m.affinity.labels(model, "hit" if hit else "miss")
            for model in fallbacks
            for hit in (True, False)
        }

    def bind_backend(self, model: str, backend: str) -> BackendMetrics:
        bound = self._backends[model, backend] = BackendMetrics(self._m, model, backend)
        return bound

    def bind_queue(self, model: str) -> QueueMetrics:
        return QueueMetrics(self._m, model)

    def request_done(self, ctx: RequestContext) -> None:
        """Count one finished request (called once, by the edge, however it ended)."""
        model = ctx.route_model or ctx.model or ""
        if model not in self._models:  # a client's unknown model never becomes a label
            model = ""
        key = (ctx.endpoint, model, ctx.backend or "", ctx.status, ctx.stream)
        (self._series.get(key) or self._bind(key)).done(ctx, time.monotonic())
        if ctx.affinity_hit is not None:
            self._affinity[model, ctx.affinity_hit].inc()
        if self._keys is not None and ctx.key_id is not None:
            self._key_done(self._keys, ctx.key_id, ctx)

    def _bind(self, key: SeriesKey) -> Series | CellSeries:
        series = Series(self._m, key, self._backends.get((key[1], key[2])))
        bound = self._series[key] = CellSeries(series) if self._cells else series
        return bound

    @staticmethod
    def _key_done(keys: KeyInstruments, key_id: str, ctx: RequestContext) -> None:
        keys.requests.labels(key_id, f"{ctx.status // 100}xx").inc()
        if ctx.usage is not None:
            keys.tokens.labels(key_id, "input").inc(ctx.usage.input)
            keys.tokens.labels(key_id, "output").inc(ctx.usage.output)

    # --- rarer events: looked up when they happen ------------------------------------------

    def retried(self, model: str, reason: AttemptFailure) -> None:
        self._m.retries.labels(model, reason).inc()

    def fell_back(self, model: str, fallback: str, reason: AttemptFailure) -> None:
        self._m.fallbacks.labels(model, fallback, reason).inc()

    def budget_exhausted(self, model: str) -> None:
        self._m.budget_exhausted.labels(model).inc()

    def limit_checked(self, limits: Limits, admission: Admission) -> None:
        """One admission against a key's limits: each limit it has allowed it, or one refused."""
        if admission.degraded:
            self._m.fail_open.labels(admission.failure or "error").inc()
            return
        if not admission.allowed:
            self._decisions[admission.kind or "requests", "refused"].inc()
            return
        if limits.rpm is not None:
            self._decisions["requests", "allowed"].inc()
        if limits.tpm is not None:
            self._decisions["tokens", "allowed"].inc()
        if limits.concurrency is not None:
            self._decisions["concurrency", "allowed"].inc()

    def limit_unchecked(self, reason: StoreFailure) -> None:
        """The limit store failed and the router fails closed: the request got a 503."""
        self._m.fail_closed.labels(reason).inc()

    def redis_error(self, operation: str, reason: StoreFailure) -> None:
        """A rate-limiter call to Redis failed (``reason``: timeout, connection, error)."""
        self._m.redis_errors.labels(operation, reason).inc()

    def key_store_restored(self) -> None:
        """This router restored the key store from its snapshot after a reset."""
        self._m.key_store_restores.labels().inc()

    def __repr__(self) -> str:
        return f"<Metrics {len(self._backends)} backends, {len(self._series)} request series>"
