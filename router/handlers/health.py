"""Liveness and readiness probes (Kubernetes' ``livenessProbe`` / ``readinessProbe``)."""

from __future__ import annotations

from aiohttp import web

from router.appkeys import PROCESS, ROUTES
from router.edge import edge
from router.handlers.common import json_response


async def healthz(request: web.Request) -> web.Response:
    """The process answers: alive."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for traffic: not draining. Lists each pool's live state for humans.

    Backend health is shown, never decisive. Every replica sees the same upstreams, so a
    readiness tied to them would pull the whole fleet out of its load balancer at once during
    an upstream outage, and clients would get connection errors instead of the router's quick
    503 ``no_backend`` with ``retry-after`` (and lose the fallback models that still work).
    Kubernetes asks readiness to reflect the pod itself; Envoy keeps a cluster with no healthy
    host routable and answers 503 "no healthy upstream" for the same reason.
    """
    pools = [repr(route.pool) for route in request.app[ROUTES]]
    if request.app[PROCESS].draining:
        return json_response({"status": "draining", "pools": pools}, status=503)
    return json_response({"status": "ready", "pools": pools})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", edge(healthz))
    app.router.add_get("/readyz", edge(readyz))
