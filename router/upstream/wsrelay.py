"""Relay a realtime session: frames both ways, unchanged and in order, until one side ends it.

Two pumps, one per direction. Each awaits its send before its next receive, and aiohttp stops
reading a socket whose message queue is full, so a slow reader slows the other side down
(TCP back-pressure end to end) and a session holds about one message each way, never a backlog.
Text frames stay bytes: forwarded without a decode and re-encode. Pings are answered by each
hop's aiohttp (autoping) and are no traffic: they neither reach the other side nor keep a session
from going idle.

The first pump to end decides how the session ends (:class:`Ending`), and both sides are then
closed with that code and reason: a client's close reaches the upstream as sent and the
upstream's close reaches the client as sent. An upstream that drops without a close frame
reaches the client as 1011 with a reason (SDKs treat 1011 as recoverable and may reconnect),
never as silence. Idle sessions and a draining router close both sides with 1001 ("going away",
what AWS API Gateway sends at its idle timeout).

Only ``response.done`` events are looked into (a substring test per upstream text frame): their
``response.usage.total_tokens`` is the session's token usage. Upstream frames that report an
error, and the upstream's close reason, lose the backend's credentials on the way
(:mod:`router.upstream.scrub`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
from aiohttp import WSMsgType
from aiohttp.http import WSMessageNoDecodeText

from router.sessionstats import EndReason, SessionStats, Traffic
from router.upstream.realtime import Upstream
from router.upstream.scrub import reports_error
from router.usage import Usage, usage_of

# Close codes a close frame may carry (RFC 6455 7.4): 1005, 1006 and 1015 only describe a
# close, and a peer such as the websockets library fails the connection on receiving them.
_SENDABLE = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})
_DATA = (WSMsgType.TEXT, WSMsgType.BINARY)
_DONE = b'"response.done"'  # inside a JSON string it would read \"response.done\"
_ERROR = b'"error"'
_HEAD = 256  # bytes of a frame searched for "error": the type of an event comes first

OnUsage = Callable[[int], Awaitable[None]]


class Socket(Protocol):
    """What the relay needs of either end: aiohttp's server and client WebSockets alike."""

    @property
    def closed(self) -> bool: ...

    async def receive(self) -> WSMessageNoDecodeText: ...

    async def send_frame(
        self, message: bytes, opcode: WSMsgType, compress: int | None = None
    ) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


@dataclass(frozen=True, slots=True)
class Ending:
    """How a session ended, and the code and reason both sides are closed with."""

    reason: EndReason
    code: int
    message: str

    @property
    def frame_reason(self) -> bytes:
        """The message as a close frame carries it: 123 bytes at most (RFC 6455 5.5)."""
        return self.message.encode()[:123]


CLIENT_GONE = Ending("client_close", 1001, "The client went away.")
SHUTDOWN = Ending("shutdown", 1001, "The server is shutting down.")
_INTERNAL = Ending("upstream_error", 1011, "The router failed to relay the session.")


class Relay:
    """One session's relay. :meth:`run` pumps until an end; :meth:`stop` ends it from outside."""

    __slots__ = (
        "_client",
        "_idle",
        "_last",
        "_loop",
        "_on_usage",
        "_stats",
        "_stopped",
        "_timer",
        "_upstream",
    )

    def __init__(
        self,
        client: Socket,
        upstream: Upstream,
        stats: SessionStats,
        *,
        idle: float,
        on_usage: OnUsage | None = None,
    ) -> None:
        self._client = client
        self._upstream = upstream
        self._stats = stats
        self._idle = idle
        self._on_usage = on_usage
        self._loop = asyncio.get_running_loop()
        self._stopped: asyncio.Future[Ending] = self._loop.create_future()
        self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None

    def stop(self, ending: Ending) -> None:
        """End the session with ``ending`` (the first end wins)."""
        if not self._stopped.done():
            self._stopped.set_result(ending)

    async def run(self) -> Ending:
        """Relay until one side or :meth:`stop` ends the session, then close both sides."""
        tag = self._stats.backend
        up = asyncio.create_task(self._pump_up(), name=f"realtime-up-{tag}")
        down = asyncio.create_task(self._pump_down(), name=f"realtime-down-{tag}")
        self._timer = self._loop.call_at(self._last + self._idle, self._check_idle)
        ending = _INTERNAL
        try:
            ending = await self._first_ending(up, down)
        except asyncio.CancelledError:  # the server cancels the handler of a lost connection
            ending = CLIENT_GONE
            raise
        finally:
            await self._finish(ending, up, down)
        return ending

    async def _first_ending(self, up: asyncio.Task[Ending], down: asyncio.Task[Ending]) -> Ending:
        done, _ = await asyncio.wait((self._stopped, down, up), return_when=asyncio.FIRST_COMPLETED)
        first = next(f for f in (self._stopped, down, up) if f in done)
        return first.result()

    async def _finish(self, ending: Ending, *pumps: asyncio.Task[Ending]) -> None:
        """Stop the pumps, then close the upstream and the client with the ending's code.

        Closing the client's socket ends its connection, and aiohttp then cancels the handler
        (``handler_cancellation``). A cancel arriving now has nothing left to stop, so it is
        absorbed and the close completes: the upstream is always closed, the session always
        logged as what it was.
        """
        if self._timer is not None:
            self._timer.cancel()
        for pump in pumps:
            pump.cancel()
        self._stats.end(ending.reason, ending.code)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
            await self._close(ending)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()

    async def _close(self, ending: Ending) -> None:
        """The upstream first: the client's close ends the handler's connection, so it is the
        last thing a session does."""
        try:
            await self._upstream.close(ending.code, ending.frame_reason)
        finally:
            await self._client.close(code=ending.code, message=ending.frame_reason)

    async def _pump_up(self) -> Ending:
        """Client to upstream."""
        client, upstream, traffic = self._client, self._upstream.ws, self._stats.client
        while True:
            msg = await client.receive()
            if msg.type not in _DATA:
                return _client_ended(msg.type, msg.data, msg.extra)
            self._count(traffic, msg.data)
            try:
                await upstream.send_frame(msg.data, msg.type)
            except ConnectionError:
                return self._upstream_dropped()

    async def _pump_down(self) -> Ending:
        """Upstream to client, reading token usage on the way."""
        client, upstream, traffic = self._client, self._upstream.ws, self._stats.upstream
        scrubber = self._upstream.backend.scrubber
        while True:
            msg = await upstream.receive()
            if msg.type not in _DATA:
                return self._upstream_ended(msg.type, msg.data, msg.extra)
            data: bytes = msg.data
            self._count(traffic, data)
            done = msg.type is WSMsgType.TEXT and _DONE in data
            if scrubber is not None and msg.type is WSMsgType.TEXT and _may_fail(data, done):
                data = scrubber.body(data)  # an error event may quote the backend's key
            try:
                await client.send_frame(data, msg.type)
            except ConnectionError:
                return CLIENT_GONE
            if done:
                await self._account(data)

    def _count(self, traffic: Traffic, data: bytes) -> None:
        self._last = self._loop.time()
        traffic.frames += 1
        traffic.bytes += len(data)

    async def _account(self, data: bytes) -> None:
        usage = response_done_usage(data)
        if usage is None:
            return
        self._stats.add_response(usage)
        if self._on_usage is not None:
            await self._on_usage(usage.total)

    def _upstream_ended(self, kind: WSMsgType, code: object, reason: str | None) -> Ending:
        if kind is WSMsgType.CLOSE and isinstance(code, int):
            scrubber = self._upstream.backend.scrubber
            if reason and scrubber is not None:
                reason = scrubber.text(reason)
            return Ending("upstream_close", _relayable(code), reason or "")
        return self._upstream_dropped()

    def _upstream_dropped(self) -> Ending:
        name = self._upstream.backend.name
        return Ending("upstream_error", 1011, f"Backend {name} dropped the connection.")

    def _check_idle(self) -> None:
        deadline = self._last + self._idle
        if self._loop.time() < deadline:  # traffic since the timer was set: check again then
            self._timer = self._loop.call_at(deadline, self._check_idle)
            return
        self.stop(Ending("idle_timeout", 1001, f"Session idle for {self._idle:g} s."))

    def __repr__(self) -> str:
        return f"<Relay {self._stats!r}>"


def _may_fail(data: bytes, done: bool) -> bool:
    """Whether an upstream text frame may report an error: an ``error`` event (its type is in
    its first bytes, where OpenAI writes ``event_id`` and ``type``), or a ``response.done``
    whose response failed. A healthy audio or text delta costs a search of its head only."""
    if data.find(_ERROR, 0, _HEAD) < 0 and not done:
        return False
    return reports_error(data)


def _client_ended(kind: WSMsgType, code: object, reason: str | None) -> Ending:
    if kind is not WSMsgType.CLOSE or not isinstance(code, int):
        return CLIENT_GONE  # the connection was lost (CLOSED) or broke the protocol (ERROR)
    code = _relayable(code)
    return Ending("completed" if code == 1000 else "client_close", code, reason or "")


def _relayable(code: int) -> int:
    """The code to pass on: as received, unless no close frame may carry it (then 1000)."""
    return code if code in _SENDABLE or 3000 <= code < 5000 else 1000


def response_done_usage(data: bytes) -> Usage | None:
    """The ``response.usage`` of a ``response.done`` event, else None."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("type") != "response.done":
        return None
    response = event.get("response")
    return usage_of(response.get("usage")) if isinstance(response, dict) else None
