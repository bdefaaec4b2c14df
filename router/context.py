"""What the router knows about one request while it travels: for the access log and metrics."""

from __future__ import annotations

import random
import time

from aiohttp import web

from balancers.fairqueue import DEFAULT_PRIORITY, Priority
from router.outcomes import Outcome
from router.sessionstats import SessionStats
from router.usage import Usage

_random_bits = random.Random().getrandbits
# A leading 1 above the id's 96 bits: hex() then writes all 24 digits, zeros included, after
# "0x1", which the prefix replaces (about two thirds of what formatting with "024x" costs).
_TOP_BIT = 1 << 96


class RequestContext:
    """Filled in along the request path; read once at its end, by the access log and metrics."""

    __slots__ = (
        "affinity",
        "affinity_hit",
        "attempts",
        "backend",
        "delivered",
        "endpoint",
        "first_token",
        "key_id",
        "model",
        "outcome",
        "pinned",
        "priority",
        "request_id",
        "route_model",
        "session",
        "started",
        "status",
        "stream",
        "tokens",
        "upstream_done",
        "upstream_first_byte",
        "upstream_request_id",
        "upstream_started",
        "usage",
    )

    def __init__(self, endpoint: str = "") -> None:
        self.endpoint = endpoint
        # A unique id for logs and headers. Not a secret, so no syscall for entropy per request.
        self.request_id = hex(_random_bits(96) | _TOP_BIT).replace("0x1", "req_", 1)
        self.started = time.monotonic()
        self.key_id: str | None = None
        self.priority: Priority = DEFAULT_PRIORITY  # the key's class in a pool's wait queue
        self.model: str | None = None
        self.route_model: str | None = None
        self.backend: str | None = None
        self.attempts = 0
        self.status = 0
        self.stream = False
        # A stream's end (data: [DONE], response.completed) has been written to the client: a
        # disconnect after that is the client being done, not a stream cut short.
        self.delivered = False
        self.outcome: Outcome = "completed"
        self.upstream_started: float | None = None
        self.upstream_first_byte: float | None = None
        self.upstream_done: float | None = None
        self.upstream_request_id: str | None = None
        self.first_token: float | None = None
        self.usage: Usage | None = None
        self.session: SessionStats | None = None  # a realtime session's counters
        # The prompt-cache key's hash on an affinity pool (router.cachekey), and whether the
        # pick went to the key's own backend.
        self.affinity: int | None = None
        self.affinity_hit: bool | None = None
        # The request's token estimate, for the accounts' quotas at the pick (0: not needed).
        self.tokens = 0
        # (model, backend) the first try must go to: the account admission charged.
        self.pinned: tuple[str, str] | None = None

    def attempt(self, model: str, backend: str) -> None:
        """A try on ``backend`` of ``model``'s pool begins."""
        if not self.attempts:  # retries count as time waiting on the upstream too
            self.upstream_started = time.monotonic()
        self.attempts += 1
        self.route_model = model
        self.backend = backend

    def __repr__(self) -> str:
        return (
            f"<RequestContext {self.request_id} {self.model} via {self.backend} "
            f"attempts={self.attempts} status={self.status} {self.outcome}>"
        )


CONTEXT = web.RequestKey("context", RequestContext)
"""Where a request keeps its :class:`RequestContext` (beside the class, so the edge needs no
app wiring to reach it)."""
