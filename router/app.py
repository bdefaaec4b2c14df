"""``create_app(config)``: wiring only. Read this first, then ``handlers/proxy.py``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from router.appkeys import (
    AUTH,
    CONFIG,
    FORWARDER,
    KEYRING,
    LIMITER,
    METRICS,
    PROCESS,
    PROXY,
    ROUTES,
    ProcessState,
    ProxyDeps,
)
from router.auth import KeyRing
from router.config import Config
from router.edge import add_fallback
from router.handlers import admin, health, models, pages, proxy, realtime, stored
from router.handlers.metrics import add_metrics_route
from router.metrics import create_metrics
from router.resources import homes, keys, limiter, redis_client
from router.routing import RouteTable
from router.upstream.forward import Forwarder


async def _upstreams(app: web.Application) -> AsyncIterator[None]:
    """Backend sessions (keep-alive pools) live exactly as long as the app."""
    routes = RouteTable(app[CONFIG], metrics=app[METRICS])
    app[ROUTES] = routes
    # The last resource up (cleanup_ctx runs in order): the proxy's lookups in one.
    deps = ProxyDeps(app[CONFIG], app[AUTH], routes, app[FORWARDER], app[LIMITER], app[METRICS])
    app[PROXY] = deps
    yield
    await routes.close()


def create_app(config: Config) -> web.Application:
    app = web.Application(
        # aiohttp refuses larger bodies with 413 while reading; the handler checks first.
        client_max_size=config.server.max_body_bytes,
    )
    app[CONFIG] = config
    app[METRICS] = metrics = create_metrics(config)
    if metrics.registry is not None and config.metrics.port is None:  # else: router.server
        add_metrics_route(app, metrics.registry, config.metrics.token)
    app[KEYRING] = KeyRing(config.keys)
    app[FORWARDER] = Forwarder(config.retry, metrics)
    app[PROCESS] = ProcessState(started_at=int(time.time()))
    app.cleanup_ctx.extend([redis_client, keys, homes, limiter, _upstreams])
    models.add_routes(app)
    proxy.add_routes(app)
    stored.add_routes(app)
    realtime.add_routes(app)
    health.add_routes(app)
    admin.add_routes(app)
    pages.add_routes(app)
    add_fallback(app)
    return app
