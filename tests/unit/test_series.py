"""A request's series: plain cells moved inline count exactly what the children's methods do."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from router.context import RequestContext
from router.metrics import MULTIPROC_ENV, Metrics
from router.metrics.series import CellSeries, Series
from router.usage import Usage
from tests.unit.test_cells import samples

FALLBACKS = {"gpt-4o": ["gpt-4o-mini"], "gpt-4o-mini": []}


def finished(stream: bool, *, usage: Usage | None, upstream: bool = True) -> RequestContext:
    """A request that started 1.5 s ago, 1.4 s of which it waited on its backend."""
    ctx = RequestContext("chat")
    ctx.started -= 1.5
    ctx.model = "gpt-4o"
    ctx.status = 200
    ctx.stream = stream
    ctx.usage = usage
    if upstream:
        ctx.route_model, ctx.backend = "gpt-4o", "a"
        ctx.upstream_started = ctx.started + 0.0004
        ctx.upstream_first_byte = ctx.started + 0.2
        ctx.upstream_done = ctx.started + 1.4004
    if stream:
        ctx.first_token = ctx.started + 0.3
    return ctx


def record(metrics: Metrics) -> None:
    metrics.bind_backend("gpt-4o", "a")
    for stream in (False, True):
        metrics.request_done(finished(stream, usage=Usage(19, 27, 46, 5)))
        metrics.request_done(finished(stream, usage=Usage(19, 1, 20)))
        metrics.request_done(finished(stream, usage=None))
    ended = finished(True, usage=None)
    ended.outcome = "client_disconnect"
    metrics.request_done(ended)
    metrics.request_done(finished(False, usage=None, upstream=False))


def library_metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    """prometheus-client's own children (as with several workers; its values stay in memory:
    the library chose where to keep them when it was imported)."""
    monkeypatch.setenv(MULTIPROC_ENV, "/nonexistent")
    metrics = Metrics(CollectorRegistry(), FALLBACKS, key_labels=False)
    monkeypatch.delenv(MULTIPROC_ENV)
    return metrics


def test_cells_are_moved_inline_and_the_library_through_its_methods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cells = Metrics(CollectorRegistry(), FALLBACKS, key_labels=False)
    library = library_metrics(monkeypatch)
    record(cells)
    record(library)
    assert {type(s) for s in cells._series.values()} == {CellSeries}
    assert {type(s) for s in library._series.values()} == {Series}
    got, want = samples(cells.registry), samples(library.registry)
    got = {k: v for k, v in got.items() if not k[0].startswith("process_")}
    assert got == pytest.approx(want, abs=0.01)  # each measured its own "now"
    output = (
        "switchyard_tokens_total",
        (("backend", "a"), ("model", "gpt-4o"), ("type", "output")),
    )
    assert got[output] == 2 * 28
