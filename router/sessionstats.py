"""What one realtime session did: frames and bytes each way, tokens, and how it ended.

Filled in by the relay as frames pass (two integer additions per frame) and finished once when
the session ends. The access log reads it (:meth:`SessionStats.log_fields`), and a metrics
module can read the same object at session end: it holds only counts, names and codes, never a
frame's content or a key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from router.outcomes import SessionEnd
from router.usage import Usage

# completed: the client closed with 1000; client_close: it closed with another code or went
# away; upstream_close: the backend sent a close frame; upstream_error: the backend dropped the
# connection or broke the protocol; idle_timeout: no message either way for the configured
# time; shutdown: the router is draining.
EndReason = SessionEnd


@dataclass(slots=True)
class Traffic:
    """Messages (WebSocket frames as the peer sent them, reassembled) and their payload bytes."""

    frames: int = 0
    bytes: int = 0


@dataclass(slots=True)
class SessionStats:
    """One session's counters; ``client`` is what the client sent, ``upstream`` what the
    backend sent."""

    backend: str
    beta: bool
    started: float = field(default_factory=time.monotonic)
    client: Traffic = field(default_factory=Traffic)
    upstream: Traffic = field(default_factory=Traffic)
    responses: int = 0  # response.done events seen
    tokens: int = 0  # their usage.total_tokens, summed
    input_tokens: int = 0
    output_tokens: int = 0
    ended: float | None = None
    reason: EndReason | None = None
    close_code: int | None = None  # the code both sides were closed with

    def add_response(self, usage: Usage) -> None:
        """A ``response.done`` reported this usage."""
        self.responses += 1
        self.tokens += usage.total
        self.input_tokens += usage.input
        self.output_tokens += usage.output

    @property
    def usage(self) -> Usage | None:
        """The session's usage so far, or None if no response reported any."""
        if not self.responses:
            return None
        return Usage(self.input_tokens, self.output_tokens, self.tokens)

    def end(self, reason: EndReason, close_code: int) -> None:
        """Record the end; only the first call counts."""
        if self.reason is None:
            self.ended = time.monotonic()
            self.reason = reason
            self.close_code = close_code

    @property
    def duration(self) -> float:
        """Seconds from the upgrade to the end (or to now, while the session is open)."""
        end = self.ended if self.ended is not None else time.monotonic()
        return end - self.started

    def log_fields(self) -> dict[str, object]:
        return {
            "realtime_api": "beta" if self.beta else "ga",
            "session_ms": round(self.duration * 1000, 2),
            "ended": self.reason,
            "close_code": self.close_code,
            "client_frames": self.client.frames,
            "client_bytes": self.client.bytes,
            "upstream_frames": self.upstream.frames,
            "upstream_bytes": self.upstream.bytes,
            "responses": self.responses,
            "tokens": self.tokens,
        }

    def __repr__(self) -> str:
        return (
            f"<SessionStats via {self.backend} {self.reason or 'open'} {self.duration:.1f}s"
            f" client {self.client.frames}f/{self.client.bytes}B"
            f" upstream {self.upstream.frames}f/{self.upstream.bytes}B tokens={self.tokens}>"
        )
