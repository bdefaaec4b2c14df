"""Several workers, one set of numbers: the supervisor's side of prometheus-client's
multiprocess mode.

Before the workers start, the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory (spawned workers inherit it, and their prometheus-client then keeps values in files
there); when a worker dies its live gauges are dropped, while its counters stay in the sum so
totals never go backwards; when the supervisor ends, the directory goes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from prometheus_client.multiprocess import mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="switchyard-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def worker_died(pid: int, directory: str) -> None:
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
