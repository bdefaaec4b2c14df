"""One kind of request's series: what :meth:`~router.metrics.recorder.Metrics.request_done`
counts a finished request in.

A request's end moves about ten values: its counter, three histograms, the backend's token
counters, and for a stream its outcome and three more histograms. Through the children's methods
that is a Python call each, ~800 instructions under callgrind against ~100 for the arithmetic,
most of what metrics cost a request (``benchmarks.instructions --variant nometrics``). So over
plain cells (one process, :mod:`router.metrics.cells`) :class:`CellSeries` does the arithmetic
itself, in one frame; over prometheus-client's children (several workers) :class:`Series` calls
their methods. Both record the same numbers (``tests/unit/test_series.py``).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, TypeVar

from router.context import RequestContext
from router.metrics.cells import CounterCell, CounterChild, HistogramCell, HistogramChild
from router.metrics.instruments import Instruments
from router.outcomes import STREAM_OUTCOMES, Outcome

if TYPE_CHECKING:
    from router.metrics.recorder import BackendMetrics

SeriesKey = tuple[str, str, str, int, bool]
"""endpoint, model, backend, status, streamed."""


class Series:
    """The children one kind of request is counted in, moved through their methods."""

    __slots__ = ("backend", "duration", "overhead", "requests", "streams", "upstream")

    def __init__(self, m: Instruments, key: SeriesKey, backend: BackendMetrics | None) -> None:
        endpoint, model, name, status, stream = key
        streamed = "true" if stream else "false"
        code = f"{status // 100}xx"
        self.requests: CounterChild = m.requests.labels(endpoint, model, name, code, streamed)
        self.duration: HistogramChild = m.request_duration.labels(endpoint, model, name, streamed)
        self.upstream: HistogramChild = m.upstream_duration.labels(endpoint, model, name)
        self.overhead: HistogramChild = m.overhead.labels(endpoint)
        http_stream = stream and endpoint != "realtime"  # a session is no SSE stream
        self.streams: dict[Outcome, CounterChild] = {
            outcome: m.streams.labels(endpoint, model, name, outcome)
            for outcome in (STREAM_OUTCOMES if http_stream else ())
        }
        self.backend = backend

    def done(self, ctx: RequestContext, now: float) -> None:
        """A request finished at ``now``: its count, duration, the part of it spent on
        upstreams (if one was tried) and the rest; its backend's tokens, and a stream's or a
        realtime session's own series."""
        total = now - ctx.started
        self.requests.inc()
        self.duration.observe(total)
        started = ctx.upstream_started
        if started is not None:
            waited = (ctx.upstream_done or now) - started
            self.upstream.observe(waited)
            total -= waited
        self.overhead.observe(max(0.0, total))
        backend = self.backend
        if backend is None:
            return
        usage = ctx.usage
        if usage is not None:
            backend.tokens_in.inc(usage.input)
            backend.tokens_out.inc(usage.output)
            if usage.cached:
                backend.tokens_cached.inc(usage.cached)
        if ctx.session is not None:
            backend.realtime.ended(ctx.session)
        elif ctx.stream:
            self._stream_done(backend, ctx, now)

    def _stream_done(self, backend: BackendMetrics, ctx: RequestContext, now: float) -> None:
        """The stream's outcome, length, time to first token and per further token."""
        counter = self.streams.get(ctx.outcome)
        if counter is not None:
            counter.inc()
        end = ctx.upstream_done or now
        if ctx.upstream_first_byte is not None:
            backend.stream_duration.observe(end - ctx.upstream_first_byte)
        first = ctx.first_token
        if first is None:
            return
        backend.ttft.observe(first - ctx.started)
        usage = ctx.usage
        if usage is not None and usage.output > 1:
            backend.tpot.observe((end - first) / (usage.output - 1))

    def __repr__(self) -> str:
        return f"<Series {self.requests}>"


C = TypeVar("C", CounterCell, HistogramCell)


def _cell(child: object, kind: type[C]) -> C:
    """``child`` as the cell it is (the series of a :class:`~router.metrics.cells.CellMaker`)."""
    if not isinstance(child, kind):
        raise TypeError(f"{child!r} is no {kind.__name__}")
    return child


class CellSeries:
    """A :class:`Series` of plain cells, moved inline: a counter is ``value += n``, an
    observation ``counts[bisect_left(bounds, x)] += 1; sum += x``, as the cells' own methods
    do (:class:`~router.metrics.cells.HistogramCell`)."""

    __slots__ = (
        "backend",
        "duration",
        "overhead",
        "requests",
        "stream_cells",
        "streams",
        "tokens",
        "upstream",
    )

    def __init__(self, series: Series) -> None:
        self.requests = _cell(series.requests, CounterCell)
        self.duration = _cell(series.duration, HistogramCell)
        self.upstream = _cell(series.upstream, HistogramCell)
        self.overhead = _cell(series.overhead, HistogramCell)
        self.streams = {o: _cell(c, CounterCell) for o, c in series.streams.items()}
        backend = self.backend = series.backend
        self.tokens: tuple[CounterCell, CounterCell, CounterCell] | None = None
        # A backend's stream_duration, ttft and tpot histograms.
        self.stream_cells: tuple[HistogramCell, HistogramCell, HistogramCell] | None = None
        if backend is not None:
            self.tokens = (
                _cell(backend.tokens_in, CounterCell),
                _cell(backend.tokens_out, CounterCell),
                _cell(backend.tokens_cached, CounterCell),
            )
            self.stream_cells = (
                _cell(backend.stream_duration, HistogramCell),
                _cell(backend.ttft, HistogramCell),
                _cell(backend.tpot, HistogramCell),
            )

    def done(self, ctx: RequestContext, now: float) -> None:
        """As :meth:`Series.done`, a stream's series included: one frame."""
        total = now - ctx.started
        self.requests.value += 1
        cell = self.duration
        cell.counts[bisect_left(cell.bounds, total)] += 1
        cell.sum += total
        started = ctx.upstream_started
        if started is not None:
            waited = (ctx.upstream_done or now) - started
            cell = self.upstream
            cell.counts[bisect_left(cell.bounds, waited)] += 1
            cell.sum += waited
            total -= waited
        overhead = total if total > 0.0 else 0.0  # max(0.0, total), without the call
        cell = self.overhead
        cell.counts[bisect_left(cell.bounds, overhead)] += 1
        cell.sum += overhead
        backend = self.backend
        if backend is None:
            return
        usage = ctx.usage
        tokens = self.tokens  # bound with the backend, as are the stream cells
        if usage is not None and tokens is not None:
            tokens_in, tokens_out, tokens_cached = tokens
            tokens_in.value += usage.input
            tokens_out.value += usage.output
            if usage.cached:
                tokens_cached.value += usage.cached
        if ctx.session is not None:
            backend.realtime.ended(ctx.session)
            return
        if not ctx.stream:
            return
        counter = self.streams.get(ctx.outcome)
        if counter is not None:
            counter.value += 1
        assert self.stream_cells is not None
        duration, ttft, tpot = self.stream_cells
        end = ctx.upstream_done or now
        if ctx.upstream_first_byte is not None:
            seconds = end - ctx.upstream_first_byte
            duration.counts[bisect_left(duration.bounds, seconds)] += 1
            duration.sum += seconds
        first = ctx.first_token
        if first is None:
            return
        seconds = first - ctx.started
        ttft.counts[bisect_left(ttft.bounds, seconds)] += 1
        ttft.sum += seconds
        if usage is not None and usage.output > 1:
            seconds = (end - first) / (usage.output - 1)
            tpot.counts[bisect_left(tpot.bounds, seconds)] += 1
            tpot.sum += seconds

    def __repr__(self) -> str:
        return f"<CellSeries {self.requests.value:g} requests>"
