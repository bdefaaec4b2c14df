"""An upstream response: status and headers, then the body as it arrives, with back-pressure.

The connection's parser pushes into the :class:`Response` (it is the parser's sink); the router
pulls with :meth:`Response.read` (a JSON body, whole) or :meth:`Response.next_chunk` (a stream,
chunk by chunk as the upstream sent them: no re-chunking, no waiting for more). A stream's
buffer is bounded: past ``HIGH_WATER`` bytes the connection stops reading from the socket, so
a slow client slows the upstream through TCP instead of growing the router's memory; reading
resumes under ``LOW_WATER`` (asyncio's own flow-control pair, and aiohttp's 64 KiB limit).

Limits, all on the connection's :class:`~router.upstream.http.timer.LazyTimer` while the
response holds it (from the request's write to the body's end): the first byte of the head
(``first_byte``), the longest silence while the reader waits for body bytes (``first_byte`` for
a body read whole, as aiohttp's ``sock_read`` did; ``idle`` between a stream's chunks), and
``total``. Time the reader spends elsewhere (writing to a slow client) is never silence.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from router.upstream.http.errors import BrokenBodyError, ReadTimeout
from router.upstream.http.timer import LazyTimer

if TYPE_CHECKING:
    from router.upstream.http.connection import Connection

HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024

_NO_HEADERS: dict[str, str] = {}  # the headers of every response until its head (never changed)


@dataclass(frozen=True, slots=True)
class Limits:
    """Seconds: connect (pool wait included), first byte, idle gap of a stream, total."""

    connect: float = 10.0
    first_byte: float = 300.0
    idle: float = 60.0
    total: float | None = 900.0


class Response:
    """One response. Call :meth:`close` when done with it (idempotent): a body not read to its
    end costs the connection, a body read whole has already given it back."""

    __slots__ = (
        "_chunks",
        "_conn",
        "_ended",
        "_error",
        "_gap",
        "_limits",
        "_loop",
        "_size",
        "_stamp",
        "_timer",
        "_total_at",
        "_waiter",
        "_whole",
        "headers",
        "status",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limits: Limits,
        started: float,
        conn: Connection,
    ) -> None:
        """The response to a request about to be written on ``conn``: the connection's timer
        keeps its limits from now on."""
        timer = conn.timer
        assert timer is not None  # made with the transport: a connection in use has one
        self._loop = loop
        self._limits = limits
        self._total_at = total_at = started + limits.total if limits.total is not None else math.inf
        self._conn: Connection | None = conn
        self._timer: LazyTimer | None = timer
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._whole = False
        self._stamp = now = loop.time()
        self._gap = limits.idle
        self.status = 0  # until the head arrives
        self.headers: dict[str, str] = _NO_HEADERS  # as UpstreamResponse.headers says
        # The idle gap (<= first_byte) first: a stream's silence must be caught that early,
        # and before the head the expiry postpones itself to the first-byte deadline.
        timer.set(min(now + min(limits.idle, limits.first_byte), total_at))

    # The client's side.

    def head(self) -> asyncio.Future[None]:
        """Await it for the status and headers; it raises what broke the exchange first.

        A future, not a coroutine: no frame of its own to create and resume per request."""
        waiter = self._loop.create_future()
        if self._error is not None:
            waiter.set_exception(self._error)
        elif self.status:
            waiter.set_result(None)
        else:
            self._waiter = waiter
        return waiter

    # The parser's side (the wire.Sink protocol).

    def on_head(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers
        self._wake()  # head()'s future, unless that failed or was cancelled

    def on_data(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._waiter is not None:
            self._stamp = self._loop.time()
            self._wake()
        elif self._size > HIGH_WATER and not self._whole and self._conn is not None:
            self._conn.pause()

    def on_end(self, keep_alive: bool) -> None:
        self._ended = True
        self._release_timer()  # nothing sets it after the end
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished(keep_alive)
        self._wake()

    def fail(self, exc: BaseException) -> None:
        """The exchange broke: the next read raises ``exc`` (after the bytes already in)."""
        if self._ended or self._error is not None:
            return
        self._error = exc
        self._drop_connection()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():  # else the reader was cancelled
            if self.status:  # the reader's loop raises it, after the chunks already in
                waiter.set_result(None)
            else:  # head()'s future
                waiter.set_exception(exc)

    # The reader's side.

    async def read(self) -> bytes:
        """The whole body."""
        self._whole = True
        self._gap = self._limits.first_byte
        if self._conn is not None:
            self._conn.resume()
        while not self._ended:
            if self._error is not None:
                raise self._error
            self._stamp = self._loop.time()
            waiter = self._waiter = self._loop.create_future()
            await waiter
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        return data

    async def next_chunk(self) -> bytes:
        """The next piece of the body as the upstream sent it; ``b""`` at its end."""
        chunks = self._chunks
        while not chunks:
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            self._stamp = self._loop.time()
            waiter = self._waiter = self._loop.create_future()
            await waiter  # a future, not a coroutine: no frame of its own per resumption
        chunk = chunks.popleft()
        self._size -= len(chunk)
        if self._size <= LOW_WATER and self._conn is not None:
            self._conn.resume()
        return chunk

    @property
    def complete(self) -> bool:
        """The body has been received to its end."""
        return self._ended

    @property
    def ready(self) -> bool:
        """:meth:`next_chunk` would answer without waiting (a chunk, the end, or an error)."""
        return bool(self._chunks) or self._ended or self._error is not None

    @property
    def drained(self) -> bool:
        """The body has been received to its end and read out: no chunk is left."""
        return self._ended and not self._chunks

    def close(self) -> None:
        """Done with it: an unfinished exchange drops its connection."""
        if not self._ended and self._error is None:
            self._error = BrokenBodyError("the response was closed before its end")
        if self._conn is not None or self._timer is not None:
            self._drop_connection()
        if self._chunks:  # a body read whole or to its end left none
            self._chunks.clear()
            self._size = 0

    def _drop_connection(self) -> None:
        self._release_timer()  # nothing sets it after a failure or a close
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abandon()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # else the reader was cancelled
                waiter.set_result(None)

    def _release_timer(self) -> None:
        """Give the connection's timer back, with no deadline (the next request sets its own)."""
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.clear()

    def expire(self) -> None:
        """The connection's timer fired while this response held it: fail it if a limit has
        passed, else set the timer for the next deadline."""
        timer = self._timer
        if timer is None:
            return
        now = self._loop.time()
        if now >= self._total_at:
            self.fail(ReadTimeout("the upstream took longer than the total limit"))
        elif not self.status:
            first_byte_at = self._stamp + self._limits.first_byte
            if now < first_byte_at:
                timer.set(min(first_byte_at, self._total_at))
            else:
                self.fail(ReadTimeout("no response from the upstream in time"))
        elif self._waiter is None:  # the reader is busy elsewhere: not the upstream's silence
            timer.set(min(now + self._gap, self._total_at))
        elif now < self._stamp + self._gap:
            timer.set(min(self._stamp + self._gap, self._total_at))
        else:
            self.fail(ReadTimeout("the upstream stopped sending"))

    def __repr__(self) -> str:
        state = "ended" if self._ended else "failed" if self._error else "open"
        return f"<Response {self.status} {state} buffered={self._size}>"
