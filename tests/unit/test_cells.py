"""Metric cells: the same numbers as prometheus-client's own metrics, rendered by its encoders."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from router.metrics.cells import CellMaker, LibraryMaker, Maker

BUCKETS = (0.1, 0.5, 1.0)


def record(make: Maker) -> None:
    requests = make.counter("t_requests", "Requests.", ("model",))
    requests.labels("a").inc()
    requests.labels("a").inc(2)
    requests.labels("b").inc()
    inflight = make.gauge("t_inflight", "In flight.", ("model",), "livesum")
    inflight.labels("a").inc()
    inflight.labels("a").inc()
    inflight.labels("a").dec()
    latency = make.histogram("t_latency_seconds", "Latency.", ("model",), BUCKETS)
    for value in (0.05, 0.1, 0.3, 1.0, 7.0):  # a bound is inclusive: 0.1 is in le="0.1"
        latency.labels("a").observe(value)
    make.counter("t_unlabelled", "Exported from the start.", ())


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def cell_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    cells = CellMaker()
    registry.register(cells)
    record(cells)
    return registry


def test_cells_export_what_the_library_would() -> None:
    library = CollectorRegistry()
    record(LibraryMaker(library))
    assert samples(cell_registry()) == samples(library)


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    got = samples(cell_registry())
    bucket = "t_latency_seconds_bucket"
    counts = [got[bucket, (("le", le), ("model", "a"))] for le in ("0.1", "0.5", "1.0", "+Inf")]
    assert counts == [2, 3, 4, 5]
    assert got["t_latency_seconds_count", (("model", "a"),)] == 5
    assert got["t_latency_seconds_sum", (("model", "a"),)] == pytest.approx(8.45)
    assert got["t_unlabelled_total", ()] == 0


def test_openmetrics_rendering() -> None:
    text = generate_openmetrics(cell_registry()).decode()
    assert "# TYPE t_requests counter" in text
    assert 't_requests_total{model="a"} 3.0' in text
    assert text.endswith("# EOF\n")


def test_wrong_number_of_label_values_is_refused() -> None:
    family = CellMaker().counter("t_x", "X.", ("model", "backend"))
    with pytest.raises(ValueError, match="expected labels"):
        family.labels("only-one")
