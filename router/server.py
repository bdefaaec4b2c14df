"""Run one router process: listen, serve, and drain on SIGTERM.

Draining (as Envoy and nginx do it): on SIGTERM or SIGINT the process reports not-ready, stops
accepting connections, lets in-flight requests and streams finish for up to
``server.drain_seconds``, then cancels what is left and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import signal
import socket

import uvloop
from aiohttp import web

from router.app import create_app
from router.appkeys import METRICS, PROCESS
from router.config import Config
from router.handlers.metrics import metrics_app
from router.logs import access_logger, flush_logs, log_event
from router.protocol import EdgeRunner

logger = logging.getLogger("switchyard")
_FD_RESERVE = 64  # listeners, Redis, log files, the metrics listener's clients


def run(config: Config, *, reuse_port: bool = False) -> None:
    """Serve until SIGTERM/SIGINT, on uvloop."""
    uvloop.run(serve(config, reuse_port=reuse_port))


async def serve(config: Config, *, reuse_port: bool = False) -> None:
    access_logger.disabled = not config.server.access_log
    app = create_app(config)
    check_fd_limit(config.server.max_connections)
    runner = EdgeRunner(
        app,
        config.server,
        handle_signals=False,
        handler_cancellation=True,  # a client that goes away cancels its upstream request
        shutdown_timeout=config.server.drain_seconds,
    )
    await runner.setup()
    metrics_runner = _metrics_runner(app, config)
    stop = _stop_event()
    try:
        site = web.TCPSite(
            runner,
            config.server.host,
            config.server.port,
            reuse_port=reuse_port,
            backlog=1024,
        )
        await site.start()
        _tune_gc()
        log_event("listening", url=_url(runner), pid=os.getpid())
        if metrics_runner is not None:
            await _start_metrics(metrics_runner, config, reuse_port)
        await stop.wait()
        app[PROCESS].draining = True
        log_event("draining", grace_seconds=config.server.drain_seconds)
    finally:
        try:
            await runner.cleanup()  # drains the API; metrics stay up until it is done
        finally:
            if metrics_runner is not None:
                await metrics_runner.cleanup()
            flush_logs()  # the access lines of the drain, before the loop (and its timer) ends
    log_event("stopped")


# CPython's default gen0 threshold (700) runs a young collection every few requests at this
# allocation rate, and every 10th/100th a costlier older one: visible in the tail latency. A
# larger young generation and the start-up objects moved out of the collector's sight
# (gc.freeze, as Instagram does for its web servers) keep the collections short and rare.
_GC_GEN0 = 50_000


def _tune_gc() -> None:
    """Freeze what start-up allocated and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(_GC_GEN0, gen1, gen2)


def _metrics_runner(app: web.Application, config: Config) -> web.AppRunner | None:
    """``metrics.port``: ``/metrics`` on a listener of its own (kept up while draining)."""
    registry = app[METRICS].registry
    if registry is None or config.metrics.port is None:
        return None
    return EdgeRunner(metrics_app(registry, config.metrics.token), config.server)


async def _start_metrics(runner: web.AppRunner, config: Config, reuse_port: bool) -> None:
    await runner.setup()
    port = config.metrics.port or 0
    await web.TCPSite(runner, config.server.host, port, reuse_port=reuse_port).start()
    log_event("metrics listening", url=_url(runner) + "/metrics")


def check_fd_limit(max_connections: int) -> None:
    """Make room for ``max_connections`` in ``RLIMIT_NOFILE``, or warn that there is none.

    A proxied request holds two descriptors (the client's socket and one upstream), an idle
    keep-alive connection one, and listeners, Redis and logs a few more. The soft limit is
    raised toward the hard one for the two-per-connection case, as Go's runtime raises it at
    start (since 1.19); a cap that does not fit even one per connection is warned about.
    """
    wanted = 2 * max_connections + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < max_connections + _FD_RESERVE:
        fields = {"max_connections": max_connections, "rlimit_nofile": soft}
        logger.warning(
            "server.max_connections exceeds the file descriptor limit", extra={"fields": fields}
        )


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _url(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) a SO_REUSEPORT socket: resolves port 0 and holds the port for the
    workers, which each bind their own listening socket beside it and share the load."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock
