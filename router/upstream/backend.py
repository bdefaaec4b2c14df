"""One backend of one model's pool: where requests go, with which credential, and its state."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Mapping

import aiohttp
from yarl import URL

from balancers import BackendState, Health, HealthPolicy
from balancers.quota import Quota
from router.config import BackendConfig
from router.endpoints import Endpoint
from router.limits import Account
from router.limits import Limits as KeyLimits
from router.metrics import BACKEND_OFF, BackendRecorder
from router.upstream.gate import Gate
from router.upstream.http import (
    HttpClient,
    Limits,
    Resolver,
    UpstreamClient,
    UpstreamResponse,
    client_context,
)
from router.upstream.http.tls import ResumingContext
from router.upstream.providers import PROVIDERS
from router.upstream.ratelimit import read as read_ratelimit
from router.upstream.scrub import Scrubber, secret_values

logger = logging.getLogger("switchyard")

# Answers whose quota headers go unread after one that showed half the quota or more left.
QUOTA_SKIP = 15


def tls_context(config: BackendConfig) -> ResumingContext | None:
    """The backend's TLS context (None for plain HTTP); ``verify: false`` is warned about."""
    if URL(config.url).scheme != "https":  # wss:// for realtime follows https:// too
        return None
    if not config.tls.verify:
        logger.warning(
            "TLS certificate verification is off (tls.verify: false)",
            extra={"fields": {"backend": config.name}},
        )
    return client_context(ca_file=config.tls.ca_file, verify=config.tls.verify)


def backend_headers(config: BackendConfig) -> dict[str, str]:
    """What the backend is sent with every request: its configured headers, then its
    credential (which wins over a configured header of the same name)."""
    provider = PROVIDERS[config.provider]
    return {**config.headers, **provider.credential_headers(config)}


def make_client(
    config: BackendConfig, resolver: Resolver, tls: ResumingContext | None
) -> UpstreamClient:
    """The backend's HTTP client: a keep-alive pool sized by its ``max_inflight``, which sends
    the backend's own headers (:func:`backend_headers`) with every request."""
    timeouts = config.timeouts
    limits = Limits(
        connect=timeouts.connect,
        first_byte=timeouts.first_byte,
        idle=timeouts.idle,
        total=timeouts.total,
    )
    return HttpClient(
        config.url,
        limit=config.max_inflight,
        limits=limits,
        resolver=resolver,
        tls=tls,
        proxy=config.proxy.get_secret_value() if config.proxy is not None else None,
        headers=backend_headers(config),
    )


def make_session(config: BackendConfig, tls: ResumingContext | None) -> aiohttp.ClientSession:
    """aiohttp's client, for realtime WebSocket dials only: same TLS and egress proxy."""
    connector = aiohttp.TCPConnector(
        limit=config.max_inflight,
        limit_per_host=0,
        ttl_dns_cache=300,
        keepalive_timeout=30,
        ssl=tls if tls is not None else True,
    )
    proxy: URL | None = None
    proxy_auth: aiohttp.BasicAuth | None = None
    if config.proxy is not None:
        url = URL(config.proxy.get_secret_value())
        proxy = url.with_user(None)  # aiohttp takes the credential apart from the URL
        if url.user is not None:
            proxy_auth = aiohttp.BasicAuth(url.user, url.password or "")
    # trust_env=False: proxy variables of the router's host must not redirect upstream traffic.
    return aiohttp.ClientSession(
        connector=connector, trust_env=False, proxy=proxy, proxy_auth=proxy_auth
    )


def declared_account(config: BackendConfig) -> Account | None:
    """The backend's declared account limits, as the limiter takes them (None: none)."""
    limits = config.limits
    if limits is None or (limits.rpm is None and limits.tpm is None):
        return None
    return Account(f"account:{config.name}", KeyLimits(rpm=limits.rpm, tpm=limits.tpm))


class Backend:
    """The router's view of an upstream backend: its URLs, credential, timeouts and state."""

    __slots__ = (
        "client",
        "declared",
        "gates",
        "headers",
        "metrics",
        "model",
        "name",
        "quota_skip",
        "reads_quota",
        "renames",
        "scrubber",
        "session",
        "state",
        "targets",
        "timeouts",
        "urls",
    )

    def __init__(
        self,
        config: BackendConfig,
        public_id: str,
        policy: HealthPolicy,
        client: UpstreamClient,
        session: aiohttp.ClientSession,
        metrics: BackendRecorder = BACKEND_OFF,
    ) -> None:
        self.name = config.name
        self.state = BackendState(
            config.name, weight=config.weight, max_inflight=config.max_inflight, policy=policy
        )
        self.client = client
        self.session = session  # realtime WebSocket dials
        provider = PROVIDERS[config.provider]
        self.model = provider.model(config, public_id)
        self.renames = self.model != public_id
        self.urls: dict[Endpoint, URL] = {
            endpoint: provider.url(config, endpoint, public_id) for endpoint in config.endpoints
        }
        # The HTTP endpoints' URLs as the client takes them, made once.
        self.targets = {endpoint: str(url) for endpoint, url in self.urls.items()}
        self.headers = backend_headers(config)  # the client sends them: see make_client
        # Every credential this backend is sent, found and hidden in what it sends back; None
        # when it is sent none. Built once here: the relay only asks whether it is None.
        self.scrubber = Scrubber.of(secret_values(config))
        # The client enforces connect (which includes waiting for a pooled connection),
        # first byte, total, and the longest silence within a body: first_byte for a body
        # read whole, idle between a stream's chunks (time spent writing to the client aside).
        self.timeouts = config.timeouts
        self.metrics = metrics
        self.state.observer = metrics.transition
        # The wait queues of the routes this backend serves (router.upstream.gate): told when
        # a slot frees. Empty without a queue configured: end() then costs one test.
        self.gates: tuple[Gate, ...] = ()
        self.reads_quota = config.quota_headers
        self.quota_skip = 0  # answers whose quota headers go unread (see read_quota)
        # The account's declared quota, charged at admission (None: not declared).
        self.declared = declared_account(config)
        if self.declared is not None:
            self.state.quota = Quota()  # fed by the admissions' bucket levels

    def begin(self) -> None:
        """A request to this backend starts: count it in flight."""
        self.state.begin()
        self.metrics.inflight.inc()
        if self.state.quota is not None:  # the pick just charged it: the predicted gauges
            self.metrics.quota(self.state.quota, time.monotonic())

    def read_quota(self, headers: Mapping[str, str], now: float, refused: bool = False) -> None:
        """Keep the account's ``x-ratelimit-*`` headers of an answer (2xx or 429), if any.

        While the account has at least half its quota left, one answer in
        ``QUOTA_SKIP + 1`` (16) is read: the picks between are charged to the prediction anyway,
        and parsing six headers on every answer of a busy pool costs more than the little the
        prediction drifts meanwhile. Nearer the limit, and on every 429, every answer is read.
        Counted in answers, not seconds, so the saving is the same at any speed.
        """
        if self.quota_skip and not refused:
            self.quota_skip -= 1
            return
        if not self.reads_quota:
            return
        reports = read_ratelimit(headers)
        if reports is None:
            return
        state = self.state
        state.report_quota(now, reports)
        quota = state.quota
        assert quota is not None
        self.quota_skip = QUOTA_SKIP if quota.fraction(now) >= 0.5 else 0
        self.metrics.quota(quota, now)

    def end(self) -> None:
        """That request is over (answered, failed or abandoned); its slot goes to a waiter."""
        self.state.end()
        self.metrics.inflight.dec()
        if self.gates:
            self._wake()

    def queue_for(self, gate: Gate) -> None:
        """Tell ``gate`` (the wait queue of a route this backend serves) when a slot frees or
        the backend recovers (a probe answered: every slot is open again, not only the
        probe's, and a stream's probe ends much later than its answer)."""
        self.gates += (gate,)
        self.state.observer = self._transition

    def _transition(self, old: Health, new: Health) -> None:
        self.metrics.transition(old, new)
        if new is Health.HEALTHY:
            self._wake()

    def _wake(self) -> None:
        gates = self.gates
        if len(gates) > 1:  # routes of one model share it: first pick of a slot by turns
            self.gates = (*gates[1:], gates[0])
        for gate in gates:
            gate.wake()

    def session_opened(self) -> None:
        """A realtime session with this backend is being relayed."""
        self.metrics.session_opened()

    def session_closed(self) -> None:
        self.metrics.session_closed()

    def post(
        self, endpoint: Endpoint, body: bytes, headers: dict[str, str]
    ) -> Awaitable[UpstreamResponse]:
        """Start the upstream request; the caller awaits it for the response headers. The
        client adds the backend's own headers (they win over ``headers``)."""
        return self.client.request("POST", self.targets[endpoint], headers, body)

    def send(
        self, method: str, url: str, body: bytes, headers: dict[str, str]
    ) -> Awaitable[UpstreamResponse]:
        """Start a request to any URL of this backend (a stored response's, a conversation's)."""
        return self.client.request(method, url, headers, body)

    async def close(self) -> None:
        """Close the backend's idle connections (HTTP and WebSocket clients)."""
        await self.client.close()
        await self.session.close()

    def __repr__(self) -> str:
        return f"<Backend {self.name} model={self.model} {self.state!r}>"
