"""Every Prometheus metric of the router, defined once.

Names follow Prometheus conventions: ``switchyard_`` prefix, base units (seconds, tokens),
``_total`` counters, ``_seconds`` histograms. Label values come from the config (public model
IDs, backend names) or from small fixed sets (endpoint, status class, outcome, reason), never
from what a client sends, so the number of series is bounded by the config. Key ids appear only
in the ``key_*`` metrics, which exist only when the operator turns them on.

With several workers, prometheus-client's multiprocess mode sums them (see
:mod:`router.handlers.metrics`); gauges say how: in-flight counts add up (``livesum``),
a backend's health shows the worst any live worker sees (``livemax``).
"""

from __future__ import annotations

from router.metrics.cells import Maker

# LLM requests run from milliseconds (embeddings, cache hits) to minutes (long generations).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
# The router's own time per request: tens of microseconds when all is well.
OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
# First token: a queue wait plus prefill; seconds for long prompts.
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
# Decode speed: 5 ms (200 tokens/s) to 500 ms a token.
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5)
STREAM_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
# Realtime sessions: a quick question to an hour-long call.
SESSION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
# A wait in a pool's queue: a slot freeing within milliseconds, up to a long max_wait.
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

_BACKEND = ("model", "backend")


class Instruments:
    """The metric families, made by ``r`` (see :mod:`router.metrics.cells`)."""

    def __init__(self, r: Maker) -> None:
        self.requests = r.counter(
            "switchyard_requests",
            "Requests answered, by endpoint, serving model and backend, status class, streamed.",
            ("endpoint", "model", "backend", "code", "stream"),
        )
        self.request_duration = r.histogram(
            "switchyard_request_duration_seconds",
            "From the request's arrival to the last byte of its answer.",
            ("endpoint", "model", "backend", "stream"),
            buckets=REQUEST_BUCKETS,
        )
        self.upstream_duration = r.histogram(
            "switchyard_upstream_duration_seconds",
            "Time waiting on upstreams, from the first attempt to the answer's last byte.",
            ("endpoint", "model", "backend"),
            buckets=REQUEST_BUCKETS,
        )
        self.overhead = r.histogram(
            "switchyard_overhead_seconds",
            "The router's own time per request: its duration less the wait on upstreams.",
            ("endpoint",),
            buckets=OVERHEAD_BUCKETS,
        )
        self._streams(r)
        self._realtime(r)
        self._backends(r)
        self._decisions(r)
        self._queues(r)
        self._caches(r)
        self._accounts(r)

    def _streams(self, r: Maker) -> None:
        self.streams = r.counter(
            "switchyard_streams",
            "Streams that ended, by how: completed, client_disconnect, upstream_error, timeout.",
            ("endpoint", "model", "backend", "outcome"),
        )
        self.ttft = r.histogram(
            "switchyard_time_to_first_token_seconds",
            "From a stream request's arrival to its first output (not the role-only chunk).",
            _BACKEND,
            buckets=TTFT_BUCKETS,
        )
        self.tpot = r.histogram(
            "switchyard_time_per_output_token_seconds",
            "Stream time after the first output token, per further output token.",
            _BACKEND,
            buckets=TPOT_BUCKETS,
        )
        self.stream_duration = r.histogram(
            "switchyard_stream_duration_seconds",
            "From a stream's response headers to its end.",
            _BACKEND,
            buckets=STREAM_BUCKETS,
        )
        self.tokens = r.counter(
            "switchyard_tokens",
            "Tokens the upstreams reported, by direction: input (prompt) or output.",
            (*_BACKEND, "type"),
        )

    def _realtime(self, r: Maker) -> None:
        self.sessions_open = r.gauge(
            "switchyard_realtime_sessions_open",
            "Realtime (WebSocket) sessions being relayed to each backend.",
            _BACKEND,
            mode="livesum",
        )
        self.sessions = r.counter(
            "switchyard_realtime_sessions",
            "Realtime sessions that ended, by how: completed, client_close, upstream_close, "
            "upstream_error, idle_timeout, shutdown.",
            (*_BACKEND, "outcome"),
        )
        self.session_duration = r.histogram(
            "switchyard_realtime_session_duration_seconds",
            "From a realtime session's upgrade to its end.",
            _BACKEND,
            buckets=SESSION_BUCKETS,
        )
        self.frames = r.counter(
            "switchyard_realtime_frames",
            "WebSocket messages relayed, by who sent them: client or upstream.",
            (*_BACKEND, "direction"),
        )
        self.frame_bytes = r.counter(
            "switchyard_realtime_bytes",
            "Payload bytes of the relayed WebSocket messages, by who sent them.",
            (*_BACKEND, "direction"),
        )

    def _backends(self, r: Maker) -> None:
        self.inflight = r.gauge(
            "switchyard_inflight_requests",
            "Requests in flight to each backend.",
            _BACKEND,
            mode="livesum",
        )
        self.open_streams = r.gauge(
            "switchyard_open_streams",
            "Streams being relayed from each backend.",
            _BACKEND,
            mode="livesum",
        )
        self.health = r.gauge(
            "switchyard_backend_health",
            "1 for the backend's health state (healthy, ejected, probing), else 0.",
            (*_BACKEND, "state"),
            mode="livemax",
        )
        self.transitions = r.counter(
            "switchyard_backend_transitions",
            "Health transitions: ejection, probe, recovery.",
            (*_BACKEND, "transition"),
        )

    def _caches(self, r: Maker) -> None:
        self.cached_tokens = r.counter(
            "switchyard_cached_tokens",
            "Input tokens the upstream served from its prompt cache (prompt_tokens_details or "
            "input_tokens_details.cached_tokens); part of switchyard_tokens{type=input}.",
            _BACKEND,
        )
        self.affinity = r.counter(
            "switchyard_affinity_picks",
            "Picks on affinity: prompt pools: hit (the cache key's own backend) or miss.",
            ("model", "result"),
        )

    def _decisions(self, r: Maker) -> None:
        self.retries = r.counter(
            "switchyard_retries",
            "Attempts on another backend of the same pool, by the failure that caused them.",
            ("model", "reason"),
        )
        self.fallbacks = r.counter(
            "switchyard_fallbacks",
            "Requests sent on to a fallback model, by the failure that caused them.",
            ("model", "fallback", "reason"),
        )
        self.budget_exhausted = r.counter(
            "switchyard_retry_budget_exhausted",
            "Retries or fallbacks not made because the retry budget was spent.",
            ("model",),
        )
        self.limit_decisions = r.counter(
            "switchyard_rate_limit_decisions",
            "Key limit checks, by limit kind (requests, tokens, concurrency) and outcome.",
            ("kind", "outcome"),
        )
        self.fail_open = r.counter(
            "switchyard_rate_limit_fail_open",
            "Requests admitted unchecked because the limit store failed (fail_open), by reason: "
            "timeout, connection, error.",
            ("reason",),
        )
        self.fail_closed = r.counter(
            "switchyard_rate_limit_fail_closed",
            "Requests refused with 503 because the limit store failed (fail_closed), by reason: "
            "timeout, connection, error.",
            ("reason",),
        )
        self.redis_errors = r.counter(
            "switchyard_redis_errors",
            "Failed Redis operations of the rate limiter (admit, flush, renew), by reason.",
            ("operation", "reason"),
        )
        self.key_store_restores = r.counter(
            "switchyard_keystore_restores",  # not switchyard_key_*: those name per-key series
            "Times this router found the key store reset (its epoch marker gone) and restored"
            " the keys from its snapshot.",
            (),
        )

    def _queues(self, r: Maker) -> None:
        self.queue_depth = r.gauge(
            "switchyard_queue_depth",
            "Requests waiting in a pool's queue for a free backend, by key priority.",
            ("model", "priority"),
            mode="livesum",
        )
        self.queue_wait = r.histogram(
            "switchyard_queue_wait_seconds",
            "Time queued requests waited before they went upstream (queued requests only).",
            ("model", "priority"),
            buckets=QUEUE_BUCKETS,
        )
        self.queue_shed = r.counter(
            "switchyard_queue_shed",
            "Requests a pool's queue refused or gave up, by reason: max_wait, max_depth "
            "(answered 429), disconnect (the client left while queued).",
            ("model", "priority", "reason"),
        )

    def _accounts(self, r: Maker) -> None:
        # Only for backends whose answers carry x-ratelimit-* headers (made on the first one):
        # a self-hosted server shows no series rather than a quota of 0.
        self.quota_remaining = r.gauge(
            "switchyard_backend_quota_remaining",
            "Each backend's account quota left, by kind (requests, tokens) and source: reported"
            " (its last x-ratelimit-remaining-*) or predicted (refilled since, less what the"
            " router sent since).",
            (*_BACKEND, "kind", "source"),
            mode="livemin",
        )
        self.quota_fraction = r.gauge(
            "switchyard_backend_quota_fraction",
            "The predicted share of each backend's account quota left (0-1; the scarcer of"
            " requests and tokens): what the balancer scales its preference by.",
            _BACKEND,
            mode="livemin",
        )
        self.upstream_rate_limited = r.counter(
            "switchyard_upstream_rate_limited",
            "429 answers from each backend (its account refused).",
            _BACKEND,
        )


class KeyInstruments:
    """Per-key series: only when ``metrics.key_labels`` is on (one series per key and label)."""

    def __init__(self, r: Maker) -> None:
        self.requests = r.counter(
            "switchyard_key_requests",
            "Requests by API key id (never the secret) and status class.",
            ("key_id", "code"),
        )
        self.tokens = r.counter(
            "switchyard_key_tokens",
            "Tokens by API key id and direction (input, output).",
            ("key_id", "type"),
        )
