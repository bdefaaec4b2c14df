"""``server.workers: N``: N full router processes on one port (SO_REUSEPORT).

The kernel spreads new connections over the workers' listening sockets, so no process is a
bottleneck or a single point of failure (nginx and Envoy scale out the same way). The parent
only supervises: it forwards SIGTERM/SIGINT for a graceful drain, and restarts a worker that dies
unexpectedly.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from router.config import Config
from router.logs import log_event, setup_logging
from router.metrics.multiproc import multiprocess_dir, worker_died
from router.server import reserve_port, run

_ctx = multiprocessing.get_context("spawn")
_RESTART_PAUSE = 1.0  # a worker crashing at start must not become a fork bomb


def _worker_main(config: Config) -> None:
    setup_logging()
    run(config, reuse_port=True)


class Supervisor:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._workers: list[BaseProcess] = []
        self._stopping = False
        self._metrics_dir: str | None = None

    def run(self) -> int:
        server = self._config.server
        with contextlib.ExitStack() as stack:
            port = self._hold(stack, server.port)
            update: dict[str, object] = {"server": server.model_copy(update={"port": port})}
            metrics = self._config.metrics
            if metrics.enabled:
                self._metrics_dir = stack.enter_context(multiprocess_dir())
                if metrics.port is not None:
                    held = self._hold(stack, metrics.port)
                    update["metrics"] = metrics.model_copy(update={"port": held})
            self._config = self._config.model_copy(update=update)
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
            log_event("supervisor", workers=server.workers, port=port)
            self._workers = [self._spawn() for _ in range(server.workers)]
            self._supervise()
        return 0

    def _hold(self, stack: contextlib.ExitStack, port: int) -> int:
        """Reserve ``port`` (resolving 0) for the workers until the supervisor ends."""
        holder = reserve_port(self._config.server.host, port)
        stack.callback(holder.close)
        port_held: int = holder.getsockname()[1]
        return port_held

    def _spawn(self) -> BaseProcess:
        process = _ctx.Process(target=_worker_main, args=(self._config,), name="switchyard-worker")
        process.start()
        return process

    def _supervise(self) -> None:
        while self._workers:
            wait([w.sentinel for w in self._workers])
            alive = [w for w in self._workers if w.is_alive()]
            for dead in (w for w in self._workers if not w.is_alive()):
                if self._metrics_dir is not None and dead.pid is not None:
                    worker_died(dead.pid, self._metrics_dir)
                if not self._stopping:
                    log_event("worker died; restarting", pid=dead.pid, exitcode=dead.exitcode)
                    time.sleep(_RESTART_PAUSE)
                    alive.append(self._spawn())
            self._workers = alive

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        for worker in self._workers:
            if worker.is_alive() and worker.pid is not None:
                worker.terminate()  # SIGTERM: the worker drains, then exits
