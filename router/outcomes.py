"""How things ended, named once: each set of names is a ``Literal`` type and its tuple of values.

Logs, metric labels and tests read these strings, so each set lives here and nowhere else: a new
name is one edit, and mypy catches a misspelt one. A pure module (it imports nothing of the
router), so every layer may use it.
"""

from __future__ import annotations

from typing import Literal, get_args

AttemptFailure = Literal[
    "timeout",
    "connect_error",
    "disconnected",
    "broken_body",
    "transport_error",
    "status_429",
    "status_5xx",
    "status_4xx",
    "no_upgrade",  # a realtime backend answered its WebSocket upgrade with no upgrade
    "no_backend",  # a fallback taken because no backend of the pool could be tried at all
]
"""Why an attempt on a backend failed, as the retries and fallbacks metrics label it."""
ATTEMPT_FAILURES: tuple[AttemptFailure, ...] = get_args(AttemptFailure)

StreamOutcome = Literal["completed", "client_disconnect", "upstream_error", "timeout"]
"""How an SSE stream ended (``switchyard_streams_total``'s ``outcome``)."""
STREAM_OUTCOMES: tuple[StreamOutcome, ...] = get_args(StreamOutcome)

SessionEnd = Literal[
    "completed", "client_close", "upstream_close", "upstream_error", "idle_timeout", "shutdown"
]
"""How a realtime session ended (``switchyard_realtime_sessions_total``'s ``reason``)."""
SESSION_ENDS: tuple[SessionEnd, ...] = get_args(SessionEnd)

Outcome = StreamOutcome | SessionEnd | Literal["error"]
"""A request's ``outcome`` in the access log: a stream's or a session's end, or ``error``."""

StoreFailure = Literal["timeout", "connection", "error"]
"""Why a call to a limit or key store failed: no answer in time, no connection, an error reply."""
STORE_FAILURES: tuple[StoreFailure, ...] = get_args(StoreFailure)

LimitKind = Literal["requests", "tokens", "concurrency"]
"""A key's limits: requests per minute, tokens per minute, concurrent requests."""
LIMIT_KINDS: tuple[LimitKind, ...] = get_args(LimitKind)

ShedReason = Literal["max_wait", "max_depth", "disconnect"]
"""Why a request left a pool's wait queue unserved (``switchyard_queue_shed_total``'s
``reason``): it waited ``max_wait``, found the queue at ``max_depth``, or its client left."""
SHED_REASONS: tuple[ShedReason, ...] = get_args(ShedReason)
