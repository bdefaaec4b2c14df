"""The idle timeout of a stream, at the cost of one clock read per chunk.

Re-arming a timer for every chunk (what ``asyncio.timeout().reschedule()`` or aiohttp's
``sock_read`` do) costs a timer cancel and a heap push per chunk. Like nginx's lazy timers and
Netty's ``IdleStateHandler``, :class:`IdleWatch` keeps one timer per stream: chunks only stamp the
time, and the timer, when it fires, either re-arms for the last stamp plus the idle period or
breaks the pending read with :class:`TimeoutError`. Time spent writing to a slow client is
back-pressure, not upstream idleness, so it never counts.
"""

from __future__ import annotations

import asyncio

from aiohttp import StreamReader


class IdleWatch:
    __slots__ = ("_content", "_handle", "_idle", "_loop", "_stamp", "_writing", "expired")

    def __init__(self, loop: asyncio.AbstractEventLoop, content: StreamReader, idle: float) -> None:
        self._loop = loop
        self._content = content
        self._idle = idle
        self._stamp = self._loop.time()
        self._writing = False
        self.expired = False
        self._handle = self._loop.call_at(self._stamp + idle, self._fire)

    def busy(self) -> None:
        """Data arrived; the relay is now writing it to the client."""
        self._writing = True

    def idle(self) -> None:
        """The relay is waiting on the upstream again."""
        self._writing = False
        self._stamp = self._loop.time()

    def cancel(self) -> None:
        self._handle.cancel()

    def _fire(self) -> None:
        deadline = self._stamp + self._idle
        if self._writing or self._loop.time() < deadline:
            self._handle = self._loop.call_at(max(deadline, self._loop.time()) + 0.001, self._fire)
            return
        self.expired = True
        self._content.set_exception(TimeoutError("upstream idle"))

    def __repr__(self) -> str:
        state = "expired" if self.expired else "writing" if self._writing else "waiting"
        return f"<IdleWatch {self._idle:g}s {state}>"
