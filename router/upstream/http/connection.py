"""One keep-alive connection to an upstream: an ``asyncio.Protocol`` feeding a ResponseReader.

The protocol does the I/O and nothing else: it writes a request, feeds what arrives to the
connection's :class:`~router.upstream.http.wire.ResponseReader` (which reports to the
:class:`~router.upstream.http.response.Response` in progress), pauses and resumes reading for
back-pressure, and notices the peer closing at any time, so the pool never sends on a
connection the upstream already closed (Go net/http reads idle connections for the same reason).
It gives itself back to its :class:`Home` (the pool) when an exchange ends: reusable, or not.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

from router.upstream.http.errors import (
    BrokenBodyError,
    ConnectError,
    DisconnectedError,
    HttpClientError,
)
from router.upstream.http.response import Response
from router.upstream.http.timer import LazyTimer
from router.upstream.http.tls import ResumingContext
from router.upstream.http.wire import ResponseReader


class Home(Protocol):
    """Where a connection goes back after each exchange (its pool)."""

    def release(self, conn: Connection, reusable: bool) -> None: ...


class Connection(asyncio.BufferedProtocol):
    """A connection and the exchange in progress on it, if any.

    A buffered protocol: the loop reads into ``buffer``, which the connections of one client
    share. llhttp copies out what it keeps (header values, body pieces) before the next read
    can happen, so nothing outlives a read; and uvloop's TLS layer then skips allocating a
    256 KiB read buffer per batch of records (measured in ``benchmarks/``: ~17-30 us a request
    over TLS)."""

    __slots__ = (
        "_buffer",
        "_home",
        "_paused",
        "_tls",
        "_tunnel",
        "closed",
        "idle_since",
        "reader",
        "received",
        "response",
        "reused",
        "timer",
        "transport",
    )

    def __init__(self, home: Home, buffer: memoryview) -> None:
        self._home = home
        self._buffer = buffer
        self.transport: asyncio.Transport | None = None
        self.reader = ResponseReader()
        self.response: Response | None = None
        self.closed = False
        self.received = False  # a byte of the current response has arrived
        self.reused = False  # it has carried an exchange before this one
        self.idle_since = 0.0
        self._paused = False
        self._tls: tuple[ResumingContext, str] | None = None  # where to keep the TLS session
        self._tunnel: tuple[bytearray, asyncio.Future[bytes]] | None = None
        # The limits of the exchange in progress (Response.attach): one loop timer for the
        # connection's life, moved and cleared by each exchange at the cost of a float.
        self.timer: LazyTimer | None = None  # from connection_made

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.timer = LazyTimer(asyncio.get_running_loop(), self._expire)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = self._buffer[:nbytes]
        response = self.response
        if response is not None:
            self.received = True
            try:
                self.reader.feed(data)
            except HttpClientError as exc:
                response.fail(exc)
                self.abort()  # also when the exchange had ended: the bytes after it are junk
        elif self._tunnel is not None:
            self._tunnel_data(bytes(data))
        else:  # bytes nobody asked for: this connection is out of step, never reuse it
            self.abort()

    def eof_received(self) -> bool:
        self.closed = True
        return False  # close our side too; connection_lost settles the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.close()  # and with it the timer's reference back to this connection
        if self._tunnel is not None and not self._tunnel[1].done():
            self._tunnel[1].set_exception(ConnectError("the proxy closed the connection"))
        response = self.response
        if response is None:
            return
        try:
            self.reader.eof()  # ends a body that runs to the close
        except BrokenBodyError as error:
            response.fail(error)
            return
        if self.response is not None:
            message = "the upstream closed the connection before answering"
            response.fail(DisconnectedError(message, received=self.received))

    def _expire(self) -> None:
        if self.response is not None:
            self.response.expire()

    # The exchange.

    def send(self, response: Response, data: bytes) -> None:
        """Write a request; ``response`` (made for this connection) receives what comes back."""
        assert self.transport is not None
        self.response = response
        self.received = False
        self.reader.sink = response
        self.transport.write(data)

    def finished(self, keep_alive: bool) -> None:
        """The response ended: back to the pool, reusable if both sides allow it."""
        self.response = None
        if self._paused:
            self.resume()
        if self._tls is not None:
            context, server_name = self._tls
            self._tls = None  # once per connection: after its first answer, tickets are in
            assert self.transport is not None
            context.keep_session(server_name, self.transport.get_extra_info("ssl_object"))
        self._home.release(self, keep_alive and not self.closed)

    def abandon(self) -> None:
        """The exchange is given up mid-way: the connection cannot be reused."""
        self.response = self.reader.sink = None
        self.abort()
        self._home.release(self, False)

    # Flow control and lifetime.

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            if not self.closed:
                self.transport.resume_reading()

    def usable(self) -> bool:
        """Still open on both ends (an idle connection the peer closed is not)."""
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing()

    def keep_tls_session(self, context: ResumingContext, server_name: str) -> None:
        self._tls = (context, server_name)

    def close(self) -> None:
        """Close gracefully (an idle connection, or one the response said to close)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # CONNECT through an egress proxy, before any exchange.

    async def tunnel(self, request: bytes) -> bytes:
        """Write a CONNECT request; the proxy's answer head (status line first)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._tunnel = (bytearray(), loop.create_future())
        self.transport.write(request)
        try:
            return await self._tunnel[1]
        finally:
            self._tunnel = None

    def _tunnel_data(self, data: bytes) -> None:
        assert self._tunnel is not None
        buffer, done = self._tunnel
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if done.done():
            return
        if end >= 0:
            if end + 4 != len(buffer):  # the server speaks before our TLS hello: not a tunnel
                done.set_exception(ConnectError("the proxy sent bytes after its answer"))
            else:
                done.set_result(bytes(buffer[:end]))
        elif len(buffer) > 16384:
            done.set_exception(ConnectError("the proxy's answer is too long"))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "busy" if self.response is not None else "idle"
        return f"<Connection {state} reused={self.reused}>"
