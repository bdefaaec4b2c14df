"""Per-instance state: configuration, counters, the fault script, the request log, and the
account's parts: its quota (``quota``), its stored responses and conversations (``store``) and
its prompt prefix cache (``prefix_cache``).

All mutation is synchronous (no ``await`` in here), so handlers never see half-updated state.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from benchmarks.fake_upstream.faults import Fault
from benchmarks.fake_upstream.prefix_cache import (
    OPENAI_BLOCK_TOKENS,
    OPENAI_MIN_TOKENS,
    PrefixCache,
)
from benchmarks.fake_upstream.quota import HeaderMode, Quota
from benchmarks.fake_upstream.store import Store

DEFAULT_MODELS = ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")


@dataclass(frozen=True, slots=True)
class FakeConfig:
    """What the command line sets: the name shown in answers, the key, the model list, and the
    account's quota, store and prefix cache (all off or empty by default)."""

    name: str = "fake"
    api_key: str | None = None
    models: tuple[str, ...] = DEFAULT_MODELS
    record_limit: int = 10_000
    rpm: int | None = None
    tpm: int | None = None
    quota_headers: HeaderMode = "openai"
    quota_window: float = 60.0
    store_limit: int = 10_000
    background_seconds: float = 1.0
    cache_blocks: int = 0
    cache_min_tokens: int = OPENAI_MIN_TOKENS
    cache_block_tokens: int = OPENAI_BLOCK_TOKENS


@dataclass(slots=True)
class SessionRecord:
    """One realtime session as the fake saw it: what the client sent and how it ended."""

    id: int
    model: str
    beta: bool
    events: list[str] = field(default_factory=list)  # the types of the client's events
    binary_frames: int = 0
    # client_close (with close_code/close_reason), client_gone (no close frame), or the fault
    # that ended it: cut (connection dropped) or fault_close (closed with the fault's code).
    ended: str | None = None
    close_code: int | None = None
    close_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "beta": self.beta,
            "events": self.events,
            "binary_frames": self.binary_frames,
            "ended": self.ended,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
        }


@dataclass(slots=True)
class RequestContext:
    """Stamped on each API request by the middleware."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    self_closed: bool = False  # a fault closed the connection on purpose: not a cancellation
    quota_headers: dict[str, str] = field(default_factory=dict)  # stamped on the answer


class FakeState:
    """Counters, scripted faults and recorded requests of one fake upstream."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.requests = 0
        self.inflight = 0
        self.cancelled = 0
        self.recorded: deque[dict[str, Any]] = deque(maxlen=config.record_limit or None)
        self.queued: deque[Fault] = deque()
        self.always: Fault | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.sessions: deque[SessionRecord] = deque(maxlen=config.record_limit or None)
        self._session_ids = 0
        self._ended_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.quota: Quota | None = None
        self.set_quota(config.rpm, config.tpm, config.quota_headers, config.quota_window)
        self.store = Store(config.store_limit, config.background_seconds)
        self.prefix_cache: PrefixCache | None = None
        if config.cache_blocks > 0:
            self.prefix_cache = PrefixCache(
                config.cache_blocks, config.cache_min_tokens, config.cache_block_tokens
            )
        self.usage = {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0}
        self.refused = {"requests": 0, "tokens": 0}

    def __repr__(self) -> str:
        return (
            f"<FakeState {self.config.name} [{self.requests} requests, {self.inflight} in flight,"
            f" {self.cancelled} cancelled | {len(self.queued)} faults queued,"
            f" always={self.always}]>"
        )

    def begin(self) -> RequestContext:
        self.requests += 1
        return RequestContext(f"req_{self.config.name}_{self.requests}")

    def record(self, request: web.Request, body: bytes) -> None:
        if self.config.record_limit <= 0:
            return
        self.recorded.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": {name.lower(): value for name, value in request.headers.items()},
                "body": body.decode("utf-8", errors="replace"),
            }
        )

    def take_fault(self) -> Fault | None:
        """The next queued fault, else the standing one, else None."""
        if self.queued:
            return self.queued.popleft()
        return self.always

    def note_cancelled(self) -> None:
        self.cancelled += 1
        waiting = []
        for threshold, future in self._waiters:
            if future.done():
                continue
            if self.cancelled >= threshold:
                future.set_result(None)
            else:
                waiting.append((threshold, future))
        self._waiters = waiting

    def cancelled_reached(self, threshold: int) -> asyncio.Future[None]:
        """A future that resolves once ``cancelled >= threshold``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.cancelled >= threshold:
            future.set_result(None)
        else:
            self._waiters.append((threshold, future))
        return future

    def open_session(self, model: str, *, beta: bool) -> SessionRecord:
        self._session_ids += 1
        record = SessionRecord(self._session_ids, model, beta)
        if self.config.record_limit > 0:
            self.sessions.append(record)
        return record

    def end_session(
        self, record: SessionRecord, ended: str, code: int | None = None, reason: str | None = None
    ) -> None:
        if record.ended is not None:
            return
        record.ended, record.close_code, record.close_reason = ended, code, reason
        ended_count = self.sessions_ended()
        waiting = []
        for threshold, future in self._ended_waiters:
            if not future.done() and ended_count >= threshold:
                future.set_result(None)
            elif not future.done():
                waiting.append((threshold, future))
        self._ended_waiters = waiting

    def sessions_ended(self) -> int:
        return sum(1 for record in self.sessions if record.ended is not None)

    def sessions_ended_reached(self, threshold: int) -> asyncio.Future[None]:
        """A future that resolves once ``threshold`` recorded sessions have ended."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.sessions_ended() >= threshold:
            future.set_result(None)
        else:
            self._ended_waiters.append((threshold, future))
        return future

    def set_quota(
        self, rpm: int | None, tpm: int | None, headers: HeaderMode, window: float = 60.0
    ) -> None:
        """A fresh quota (full buckets), or none when neither limit is set."""
        quota = Quota(rpm, tpm, headers, time.monotonic, window) if rpm or tpm else None
        self.quota = quota

    def note_usage(self, prompt: int, cached: int, completion: int) -> None:
        self.usage["prompt_tokens"] += prompt
        self.usage["cached_tokens"] += cached
        self.usage["completion_tokens"] += completion

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "inflight": self.inflight,
            "cancelled": self.cancelled,
            "refused_429": sum(self.refused.values()),
            "refused_requests": self.refused["requests"],
            "refused_tokens": self.refused["tokens"],
            **self.usage,
            **self.store.stats(),
        }


STATE = web.AppKey("fake_state", FakeState)
CONTEXT = web.RequestKey("fake_context", RequestContext)
