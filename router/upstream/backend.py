"""One backend of one model's pool: where requests go, with which credential, and its state."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.client import _RequestContextManager
from yarl import URL

from balancers import BackendState, HealthPolicy
from router.config import BackendConfig, Endpoint
from router.metrics import BackendMetrics
from router.upstream.providers import credential_headers, endpoint_url, upstream_model
from router.upstream.scrub import Scrubber, secret_values


def make_session(config: BackendConfig) -> aiohttp.ClientSession:
    """A keep-alive pool for one backend, sized by its ``max_inflight``."""
    connector = aiohttp.TCPConnector(
        limit=config.max_inflight,
        limit_per_host=0,
        ttl_dns_cache=300,
        keepalive_timeout=30,
    )
    # trust_env=False: proxy variables of the router's host must not redirect upstream traffic.
    return aiohttp.ClientSession(connector=connector, trust_env=False)


class Backend:
    """The router's view of an upstream backend: its URLs, credential, timeouts and state."""

    __slots__ = (
        "client_timeout",
        "headers",
        "loop",
        "metrics",
        "model",
        "name",
        "renames",
        "scrubber",
        "session",
        "state",
        "timeouts",
        "urls",
    )

    def __init__(
        self,
        config: BackendConfig,
        public_id: str,
        policy: HealthPolicy,
        session: aiohttp.ClientSession,
        metrics: BackendMetrics | None = None,
    ) -> None:
        self.name = config.name
        self.state = BackendState(
            config.name, weight=config.weight, max_inflight=config.max_inflight, policy=policy
        )
        self.session = session
        self.model = upstream_model(config, public_id)
        self.renames = self.model != public_id
        self.urls: dict[Endpoint, URL] = {
            endpoint: endpoint_url(config, endpoint, public_id) for endpoint in config.endpoints
        }
        self.headers = {**config.headers, **credential_headers(config)}
        # Every credential this backend is sent, found and hidden in what it sends back; None
        # when it is sent none. Built once here: the relay only asks whether it is None.
        self.scrubber = Scrubber.of(secret_values(config))
        self.timeouts = config.timeouts
        # aiohttp enforces connect (which includes waiting for a pooled connection), total,
        # and sock_read: the longest silence, which before the headers is the first byte.
        # A stream's idle limit (never above first_byte) is the relay's IdleWatch.
        self.client_timeout = aiohttp.ClientTimeout(
            total=config.timeouts.total,
            connect=config.timeouts.connect,
            sock_connect=config.timeouts.connect,
            sock_read=config.timeouts.first_byte,
        )
        self.loop = asyncio.get_running_loop()
        self.metrics = metrics
        if metrics is not None:
            self.state.observer = metrics.transition

    def begin(self) -> None:
        """A request to this backend starts: count it in flight."""
        self.state.begin()
        if self.metrics is not None:
            self.metrics.inflight.inc()

    def end(self) -> None:
        """That request is over (answered, failed or abandoned)."""
        self.state.end()
        if self.metrics is not None:
            self.metrics.inflight.dec()

    def post(
        self, endpoint: Endpoint, body: bytes, headers: dict[str, str]
    ) -> _RequestContextManager:
        """Start the upstream request; the caller awaits it for the response headers."""
        return self.session.post(
            self.urls[endpoint],
            data=body,
            headers={**headers, **self.headers},
            timeout=self.client_timeout,
            allow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"<Backend {self.name} model={self.model} {self.state!r}>"
