"""Prometheus metrics: defined in ``instruments``, recorded by ``recorder``; ``multiproc``
makes several workers sum right. ``GET /metrics`` is a handler (:mod:`router.handlers.metrics`):
this package imports nothing above it, so everything may record."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, ProcessCollector

from router.config import Config
from router.metrics.multiproc import MULTIPROC_ENV
from router.metrics.off import BACKEND_OFF, METRICS_OFF, QUEUE_OFF
from router.metrics.recorder import BackendMetrics, Metrics
from router.metrics.types import BackendRecorder, QueueRecorder, Recorder

__all__ = [
    "BACKEND_OFF",
    "METRICS_OFF",
    "MULTIPROC_ENV",
    "QUEUE_OFF",
    "BackendMetrics",
    "BackendRecorder",
    "Metrics",
    "QueueRecorder",
    "Recorder",
    "create_metrics",
]


def create_metrics(config: Config) -> Recorder:
    """The app's metrics; a recorder that does nothing when ``metrics.enabled`` is false."""
    if not config.metrics.enabled:
        return METRICS_OFF
    registry = CollectorRegistry()
    if not os.environ.get(MULTIPROC_ENV):  # per-process CPU and memory make no sense summed
        ProcessCollector(registry=registry)
    fallbacks = {model_id: model.fallbacks for model_id, model in config.models.items()}
    return Metrics(registry, fallbacks, key_labels=config.metrics.key_labels)
