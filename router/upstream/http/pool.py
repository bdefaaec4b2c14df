"""A keep-alive pool of connections to one backend, bounded like aiohttp's ``limit``.

* At most ``limit`` connections (busy, idle or being dialed); past it, requests wait in line
  for one to come back, within their connect timeout.
* Last in, first out: the most recently used connection is the likeliest to be alive and warm
  (httpcore and Go net/http do the same); the least recent ones age out at the bottom.
* An idle connection is closed after ``keepalive`` seconds (aiohttp's and Go's default is
  30 s and 90 s; upstream servers commonly close theirs after 60-75 s, so ours must close first
  to avoid racing them). One sweep timer per pool, only while connections are idle.
* A connection the peer closed while idle is never handed out: its protocol saw the close.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from router.upstream.http.connection import Connection
from router.upstream.http.errors import ConnectError


class ConnectionPool:
    """The connections of one backend. ``dial`` opens a new one (raising ConnectError)."""

    __slots__ = (
        "_closed",
        "_dial",
        "_idle",
        "_loop",
        "_open",
        "_sweep",
        "_waiters",
        "keepalive",
        "limit",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        dial: Callable[[ConnectionPool], Awaitable[Connection]],
        *,
        limit: int,
        keepalive: float = 30.0,
    ) -> None:
        self._loop = loop
        self._dial = dial
        self.limit = limit
        self.keepalive = keepalive
        self._idle: list[Connection] = []  # oldest first; taken from the end
        self._open = 0
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    def take_idle(self) -> Connection | None:
        """The most recently used live idle connection, without waiting; None if there is none."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable():
                conn.reused = True
                return conn
            self._forget(conn)
        return None

    async def connect(self) -> Connection:
        """A fresh connection, once the pool is under its limit (the caller bounds the wait)."""
        while self._open >= self.limit:
            conn = self.take_idle()
            if conn is not None:  # make room: close an idle one rather than wait for it
                conn.close()
                self._forget(conn)
                break
            handed = await self._queue()
            if handed is not None:
                handed.close()
                self._forget(handed)
                break
        self._open += 1
        try:
            return await self._dial(self)
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    async def acquire(self) -> Connection:
        """An idle connection, or one handed back while waiting, or a fresh one."""
        while True:
            conn = self.take_idle()
            if conn is not None:
                return conn
            if self._open < self.limit:
                return await self.connect()
            conn = await self._queue()
            if conn is not None:
                conn.reused = True
                return conn

    def release(self, conn: Connection, reusable: bool) -> None:
        """An exchange on ``conn`` ended (see :class:`Connection`)."""
        if not reusable or self._closed:
            if not conn.closed:
                conn.close()
            self._forget(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = self._loop.time()
        self._idle.append(conn)
        if self._sweep is None:
            self._sweep = self._loop.call_later(self.keepalive, self._expire_idle)

    async def close(self) -> None:
        """Close every idle connection; busy ones close when their exchange ends."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            self._open -= 1
        self.limit = 0  # nothing new from here on
        while self._waiters:  # nobody waits for a pool that will not open anything
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectError("the client is closed"))
        await asyncio.sleep(0)  # let the transports run their close callbacks

    async def _queue(self) -> Connection | None:
        if self._closed:
            raise ConnectError("the client is closed")
        waiter: asyncio.Future[Connection | None] = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if handed is not None:  # handed over as we gave up: pass it on
                self.release(handed, True)
            raise

    def _forget(self, conn: Connection) -> None:
        """``conn`` is gone: its place is free for a waiter to dial."""
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _expire_idle(self) -> None:
        self._sweep = None
        cutoff = self._loop.time() - self.keepalive
        idle = self._idle
        stale = 0
        while stale < len(idle) and idle[stale].idle_since <= cutoff:
            stale += 1
        for conn in idle[:stale]:
            conn.close()
            self._forget(conn)
        del idle[:stale]
        if idle:
            delay = idle[0].idle_since + self.keepalive - self._loop.time()
            self._sweep = self._loop.call_later(max(delay, 0.001), self._expire_idle)

    def __repr__(self) -> str:
        busy = self._open - len(self._idle)
        return (
            f"<ConnectionPool {busy} busy, {len(self._idle)} idle, {len(self._waiters)} waiting"
            f" | limit {self.limit}>"
        )
