"""Where metric values live: plain numbers in one process, prometheus-client's files in several.

prometheus-client guards every value with a ``threading.Lock`` and walks a histogram's buckets
in Python: an increment costs ~0.35 µs and an observation ~0.85 µs, about 8 µs for the dozen a
streamed request records, which the benchmark saw (metrics on at 81-92% of metrics off). The
router records only from its event loop thread, so in one process a value can be a plain
attribute and a bucket found by ``bisect``: ~0.05 and ~0.15 µs. These cells are exported
through prometheus-client's documented custom-collector interface (its metric families, its
text and OpenMetrics encoders), so the exposition is the library's.

With several workers the values must be summed across processes, which is what
prometheus-client's multiprocess mode does: :func:`maker` then returns the library's own metric
classes, whose children have the same ``inc``/``dec``/``set``/``observe`` methods.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, Literal, Protocol, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from router.metrics.multiproc import MULTIPROC_ENV

GaugeMode = Literal["livesum", "livemax", "livemin"]


class CounterChild(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class GaugeChild(Protocol):
    def inc(self, amount: float = 1) -> None: ...

    def dec(self, amount: float = 1) -> None: ...

    def set(self, value: float) -> None: ...


class HistogramChild(Protocol):
    def observe(self, amount: float) -> None: ...


C_co = TypeVar("C_co", covariant=True)


class Family(Protocol[C_co]):
    """A metric with labels; ``labels(...)`` gives the child for one set of label values."""

    def labels(self, *values: str) -> C_co: ...


class Maker(Protocol):
    def counter(self, name: str, doc: str, labels: Sequence[str]) -> Family[CounterChild]: ...

    def gauge(
        self, name: str, doc: str, labels: Sequence[str], mode: GaugeMode
    ) -> Family[GaugeChild]: ...

    def histogram(
        self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> Family[HistogramChild]: ...


def maker(registry: CollectorRegistry) -> Maker:
    """Plain cells in one process; prometheus-client's multiprocess values with several."""
    if os.environ.get(MULTIPROC_ENV):
        return LibraryMaker(registry)
    cells = CellMaker()
    registry.register(cells)
    return cells


# --- one process: plain numbers ----------------------------------------------------------


class CounterCell:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class GaugeCell:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class HistogramCell:
    """Per-bucket counts (not cumulative: one increment per observation) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1  # le: bound >= amount
        self.sum += amount


T = TypeVar("T")


class CellFamily(Generic[T]):
    """One metric's cells by label values; ``collect`` renders them as a metric family."""

    def __init__(
        self, name: str, doc: str, labels: Sequence[str], new: Callable[[], T], kind: str
    ) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labels)
        self.kind = kind
        self._new = new
        self.cells: dict[tuple[str, ...], T] = {}
        if not self.labelnames:  # exported from the start, as a plain metric is
            self.labels()

    def labels(self, *values: str) -> T:
        cell = self.cells.get(values)
        if cell is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            cell = self.cells[values] = self._new()
        return cell


class CellMaker(Collector):
    """Makes cell families and exports them all when the registry is scraped."""

    def __init__(self) -> None:
        self._families: list[CellFamily[object]] = []

    def _add(self, family: CellFamily[T]) -> CellFamily[T]:
        self._families.append(family)  # type: ignore[arg-type]
        return family

    def counter(self, name: str, doc: str, labels: Sequence[str]) -> CellFamily[CounterCell]:
        return self._add(CellFamily(name, doc, labels, CounterCell, "counter"))

    def gauge(
        self, name: str, doc: str, labels: Sequence[str], mode: GaugeMode
    ) -> CellFamily[GaugeCell]:
        return self._add(CellFamily(name, doc, labels, GaugeCell, "gauge"))

    def histogram(
        self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> CellFamily[HistogramCell]:
        bounds = tuple(float(b) for b in buckets)
        return self._add(CellFamily(name, doc, labels, lambda: HistogramCell(bounds), "histogram"))

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield _render(family)


def _render(family: CellFamily[object]) -> Metric:
    labels = family.labelnames
    cells = list(family.cells.items())  # a snapshot: scrapes run on the same loop anyway
    if family.kind == "histogram":
        histogram = HistogramMetricFamily(family.name, family.doc, labels=labels)
        for values, cell in cells:
            assert isinstance(cell, HistogramCell)
            histogram.add_metric(list(values), _buckets(cell), cell.sum)
        return histogram
    metric: CounterMetricFamily | GaugeMetricFamily
    if family.kind == "counter":
        metric = CounterMetricFamily(family.name, family.doc, labels=labels)
    else:
        metric = GaugeMetricFamily(family.name, family.doc, labels=labels)
    for values, cell in cells:
        assert isinstance(cell, CounterCell | GaugeCell)
        metric.add_metric(list(values), cell.value)
    return metric


def _buckets(cell: HistogramCell) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs, +Inf last, as the exposition formats want them."""
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*cell.bounds, math.inf), cell.counts, strict=True):
        running += count
        le = "+Inf" if bound == math.inf else floatToGoString(bound)  # type: ignore[no-untyped-call]
        out.append((le, running))
    return out


# --- several processes: the library's multiprocess values ---------------------------------


class _Unlabelled(Generic[T]):
    """A metric without labels, in the families' shape: ``labels()`` is the metric itself."""

    def __init__(self, metric: T) -> None:
        self._metric = metric

    def labels(self, *values: str) -> T:
        return self._metric


class LibraryMaker:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def counter(self, name: str, doc: str, labels: Sequence[str]) -> Family[CounterChild]:
        counter = prometheus_client.Counter(name, doc, labels, registry=self._registry)
        return counter if labels else _Unlabelled(counter)

    def gauge(
        self, name: str, doc: str, labels: Sequence[str], mode: GaugeMode
    ) -> Family[GaugeChild]:
        return prometheus_client.Gauge(
            name, doc, labels, registry=self._registry, multiprocess_mode=mode
        )

    def histogram(
        self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> Family[HistogramChild]:
        return prometheus_client.Histogram(
            name, doc, labels, buckets=buckets, registry=self._registry
        )
