"""The config's schema: one frozen pydantic model per section, unknown keys forbidden.

Field bounds and the checks within one section live here; checks across sections (unique
names, known strategies, fallbacks) are the loader's third pass (:mod:`router.config.load`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from yarl import URL

from balancers.fairqueue import DEFAULT_PRIORITY, Priority
from router.endpoints import ENDPOINT_NAMES, Endpoint
from router.limits.types import MAX_CONCURRENCY, MAX_PER_MINUTE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=512)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    # SIGTERM grace: in-flight requests and streams get this long to finish.
    drain_seconds: float = Field(30.0, ge=0)
    access_log: bool = True
    # nginx's client_header_timeout and client_body_timeout (60 s there too): the whole request
    # head, from accept or the end of the previous response; the body, between two reads. 408.
    header_timeout: float = Field(60.0, gt=0, le=3600)
    body_timeout: float = Field(60.0, gt=0, le=3600)
    # Open client connections per process; past it a new one gets 503 at once.
    max_connections: int = Field(10_000, ge=1, le=1_000_000)


class LimitsConfig(_Strict):
    """Per-key limits: requests and tokens per minute, concurrent requests (unset: none).

    0 refuses every request of the key; the bounds are router.limits.types.MAX_LIMITS."""

    rpm: int | None = Field(None, ge=0, le=MAX_PER_MINUTE)
    tpm: int | None = Field(None, ge=0, le=MAX_PER_MINUTE)
    concurrency: int | None = Field(None, ge=0, le=MAX_CONCURRENCY)


class AccountLimitsConfig(_Strict):
    """A backend's declared account quota: requests and tokens per minute (unset: none).

    The account's quota, or the share of it this router fleet may use. Shared by every router
    through Redis (in process without it); backends of the same ``name`` share one quota."""

    rpm: int | None = Field(None, ge=1, le=MAX_PER_MINUTE)
    tpm: int | None = Field(None, ge=1, le=MAX_PER_MINUTE)


class KeyConfig(_Strict):
    name: str = Field(min_length=1)
    key: SecretStr
    models: tuple[str, ...] = ("*",)
    limits: LimitsConfig = LimitsConfig()
    # Its class in a pool's wait queue (balancers.fairqueue): interactive before default
    # before batch.
    priority: Priority = DEFAULT_PRIORITY

    @field_validator("key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("a key needs at least 8 characters")
        return value


class Timeouts(_Strict):
    """Per-backend timeouts in seconds. LLM answers are slow: first byte of a non-streamed
    completion only arrives when the whole answer is generated, hence the generous defaults."""

    connect: float = Field(10.0, gt=0)
    first_byte: float = Field(300.0, gt=0)
    idle: float = Field(60.0, gt=0)
    total: float | None = Field(900.0, gt=0)
    # A realtime session with no message either way for this long is closed. Pings do not
    # count: an SDK pings every 20 s, idle or not.
    realtime_idle: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _idle_within_first_byte(self) -> Timeouts:
        # first_byte is also the longest silence within a body read whole; the idle limit of
        # a stream tightens it, it cannot loosen it.
        if self.idle > self.first_byte:
            raise ValueError("idle must not be longer than first_byte")
        return self


class TlsConfig(_Strict):
    """How a backend's certificate is checked: against the system store unless ``ca_file``
    names a PEM bundle; ``verify: false`` checks nothing (a warning is logged at start)."""

    ca_file: str | None = None
    verify: bool = True

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError("no such file")
        return value


class BackendConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    url: str
    provider: Literal["openai", "azure"] = "openai"
    api_key: SecretStr | None = None
    model: str | None = None
    weight: int = Field(1, ge=1, le=10_000)
    max_inflight: int = Field(256, ge=1)
    endpoints: tuple[Endpoint, ...] = ENDPOINT_NAMES
    api_version: str = "2024-10-21"
    deployment: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # Names of `headers` whose values are credentials, to scrub from what the upstream sends
    # back; Authorization, Proxy-Authorization, api-key and x-api-key are secret unmarked.
    secret_headers: tuple[str, ...] = ()
    timeouts: Timeouts = Timeouts()
    tls: TlsConfig = TlsConfig()
    # An egress proxy, http://[user:pass@]host:port: HTTPS goes through it with CONNECT, plain
    # HTTP as absolute-URI requests. A secret, like api_key: it may hold the proxy's password.
    proxy: SecretStr | None = None
    # The provider account's quota, declared (see AccountLimitsConfig); None: only what the
    # account's own x-ratelimit-* headers say.
    limits: AccountLimitsConfig | None = None
    # Plan with the account's x-ratelimit-* headers (README "Account quotas"); false ignores
    # them (an upstream behind a gateway whose headers describe something else).
    quota_headers: bool = True

    @field_validator("proxy")
    @classmethod
    def _is_proxy_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            url = URL(value.get_secret_value())
        except (ValueError, TypeError):
            raise ValueError("not a URL") from None
        if url.scheme != "http" or not url.host:
            raise ValueError("not an http:// proxy URL")  # never echo it: it may hold a password
        return value

    @field_validator("url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        try:
            url = URL(value)
        except (ValueError, TypeError):
            raise ValueError("not a URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("not a URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secret_headers_exist(self) -> BackendConfig:
        # A misspelt name would leave a credential unprotected without a word: refuse it.
        names = {name.lower() for name in self.headers}
        unknown = [name for name in self.secret_headers if name.lower() not in names]
        if unknown:
            raise ValueError(f"secret_headers names headers not in `headers`: {unknown}")
        return self


class QueueConfig(_Strict):
    """A pool's wait queue: when every backend is busy (at ``max_inflight``, or resting after
    a 429 for less than ``max_wait``), a request waits up to ``max_wait`` seconds, behind at
    most ``max_depth - 1`` others, instead of piling onto a busy backend; past either, 429."""

    max_wait: float = Field(gt=0, le=3600)
    max_depth: int = Field(ge=1, le=1_000_000)


class ModelConfig(_Strict):
    strategy: str = "least-latency"
    fallbacks: tuple[str, ...] = ()
    backends: tuple[BackendConfig, ...] = Field(min_length=1)
    # This pool's wait queue; replaces the top-level one (unset: the top-level queue, if any).
    queue: QueueConfig | None = None
    # prompt: requests that share a prompt-cache key stay on one backend (balancers.affinity).
    affinity: Literal["none", "prompt"] = "none"


class HealthConfig(_Strict):
    failures_to_eject: int = Field(3, ge=1)
    cooldown: float = Field(5.0, gt=0)
    max_cooldown: float = Field(300.0, gt=0)
    latency_decay: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _cooldown_within_cap(self) -> HealthConfig:
        # balancers.HealthPolicy refuses this pair at start; the schema must refuse it first.
        if self.cooldown > self.max_cooldown:
            raise ValueError("cooldown must not be longer than max_cooldown")
        return self


class RetryConfig(_Strict):
    attempts: int = Field(3, ge=1, le=10)  # per pool, the first try included
    backoff_initial: float = Field(0.02, ge=0)
    backoff_max: float = Field(0.5, ge=0)
    # Finagle's RetryBudget defaults: 20% over 10 s, plus a floor for quiet periods.
    budget_percent: float = Field(0.2, ge=0, le=10)
    budget_window: float = Field(10.0, gt=0)
    budget_min_per_second: float = Field(5.0, ge=0)


class RedisConfig(_Strict):
    """Shared state for many router processes and hosts: key records and rate-limit buckets."""

    url: str = Field(pattern=r"^(redis|rediss|unix)://")
    prefix: str = "sy:"
    # Redis's answer to a limiter call is bounded by this; past it the request is admitted
    # (fail_open, counted and logged) or refused with 503 (fail_closed). Nothing waits on a
    # sick Redis. Queueing behind a burst's other calls is not counted (router.limits.pipeline).
    timeout_ms: float = Field(50.0, gt=0, le=60_000)
    failure: Literal["fail_open", "fail_closed"] = "fail_open"
    # The key store's pool; past it, operations wait for a free connection (bounded, see
    # router.redisconn). The limiter has its own few connections and never waits on these.
    max_connections: int = Field(50, ge=2, le=10_000)


class StoreConfig(_Strict):
    """The embedded key store, used when no Redis is configured; with Redis, the file where
    each router keeps its snapshot of every key (hashes only), restored if Redis loses them."""

    path: str = ".switchyard/keys.sqlite3"
    snapshot_path: str | None = None  # default: keys-snapshot.json beside ``path``
    # How long the home (backend and owner key) of a stored response or conversation is kept:
    # OpenAI keeps responses 30 days. Without Redis, homes live in homes.sqlite3 beside ``path``.
    homes_ttl_days: float = Field(30.0, gt=0, le=3650)

    @property
    def snapshot_file(self) -> Path:
        """Where the snapshot of the keys lives: ``snapshot_path``, else beside ``path``."""
        if self.snapshot_path is not None:
            return Path(self.snapshot_path)
        return Path(self.path).with_name("keys-snapshot.json")


class AdminConfig(_Strict):
    key: SecretStr | None = None  # the admin API and the web page are off without one

    @field_validator("key")
    @classmethod
    def _strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None  # "${SWITCHYARD_ADMIN_KEY:-}" unset: the admin API stays off
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the admin key needs at least 16 characters")
        return value


class TokenEstimateConfig(_Strict):
    """How admission estimates a request's tokens before the upstream reports real usage."""

    bytes_per_token: float = Field(4.0, gt=0)  # OpenAI's rule of thumb for English text
    default_max_tokens: int = Field(1024, ge=0)  # when the request sets no max_tokens


class MetricsConfig(_Strict):
    """Prometheus metrics at ``GET /metrics``: never behind client keys, optionally a token."""

    enabled: bool = True
    # Its own listener (on server.host) instead of the router's port; null: the router's port.
    port: int | None = Field(None, ge=0, le=65535)
    token: SecretStr | None = None  # "${SWITCHYARD_METRICS_TOKEN:-}" unset: no token asked
    # Label cardinality is a choice: per-key series only when the operator asks for them.
    key_labels: bool = False
    # Ask chat streams for their usage chunk (removed again before the client sees it), so
    # tokens and time per output token are measured for every stream, not only limited keys'.
    stream_usage: bool = True

    @field_validator("token")
    @classmethod
    def _empty_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None


class Config(_Strict):
    server: ServerConfig = ServerConfig()
    redis: RedisConfig | None = None
    store: StoreConfig = StoreConfig()
    admin: AdminConfig = AdminConfig()
    estimate: TokenEstimateConfig = TokenEstimateConfig()
    keys: tuple[KeyConfig, ...] = ()
    models: dict[str, ModelConfig] = Field(min_length=1)
    health: HealthConfig = HealthConfig()
    retry: RetryConfig = RetryConfig()
    metrics: MetricsConfig = MetricsConfig()
    # Every pool's wait queue unless the pool sets its own; unset: no queue, fail fast.
    queue: QueueConfig | None = None
