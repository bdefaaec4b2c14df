"""``GET /metrics``: the Prometheus text format, or OpenMetrics when the scraper asks for it.

Never behind client keys; ``metrics.token`` (optional) is a bearer token of its own. With one
process the app's registry is rendered as is. With several workers (``PROMETHEUS_MULTIPROC_DIR``
set by the supervisor) every worker writes its values to memory-mapped files there, and whichever
worker is scraped sums them all with prometheus-client's ``MultiProcessCollector``.
"""

from __future__ import annotations

import hmac
import os

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import SecretStr

from router.auth import bearer_token
from router.edge import Handler, edge
from router.errors import Unauthorized
from router.metrics.multiproc import MULTIPROC_ENV

_NO_STORE = {"Cache-Control": "no-store"}


def exposition_registry(registry: CollectorRegistry) -> CollectorRegistry:
    """What ``/metrics`` renders: this process's registry, or every worker's summed."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return registry
    summed = CollectorRegistry()
    MultiProcessCollector(summed, path=directory)  # type: ignore[no-untyped-call]
    return summed


def metrics_handler(registry: CollectorRegistry, token: SecretStr | None) -> Handler:
    rendered = exposition_registry(registry)
    expected = token.get_secret_value().encode() if token is not None else None

    async def metrics(request: web.Request) -> web.StreamResponse:
        if expected is not None:
            presented = bearer_token(request.headers.get("Authorization")) or ""
            if not hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected):
                raise Unauthorized("The metrics endpoint needs its token (Bearer METRICS_TOKEN).")
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(rendered)
        return web.Response(body=body, headers={"Content-Type": content_type, **_NO_STORE})

    return metrics


def add_metrics_route(
    app: web.Application, registry: CollectorRegistry, token: SecretStr | None
) -> None:
    app.router.add_get("/metrics", edge(metrics_handler(registry, token)))


def metrics_app(registry: CollectorRegistry, token: SecretStr | None) -> web.Application:
    """The app of ``metrics.port``: ``/metrics`` and nothing else."""
    app = web.Application()
    add_metrics_route(app, registry, token)
    return app
