"""Liveness and readiness probes (Kubernetes' ``livenessProbe`` / ``readinessProbe``)."""

from __future__ import annotations

from aiohttp import web

from router.appkeys import LIFECYCLE, ROUTES
from router.edge import edge
from router.handlers.common import json_response


async def healthz(request: web.Request) -> web.Response:
    """The process answers: alive."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for traffic: not draining. Lists each pool's live state for humans."""
    pools = [repr(route.pool) for route in request.app[ROUTES]]
    if request.app[LIFECYCLE].draining:
        return json_response({"status": "draining", "pools": pools}, status=503)
    return json_response({"status": "ready", "pools": pools})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", edge(healthz))
    app.router.add_get("/readyz", edge(readyz))
