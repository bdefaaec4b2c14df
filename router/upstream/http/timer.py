"""One loop timer per request, moved lazily.

A request has up to four limits (connect, first byte, idle gap, total) and a stream moves its
idle deadline with every chunk. Re-arming a loop timer for each of those would cost a cancel and
a heap push each time. Like nginx's lazy timers and Netty's ``IdleStateHandler``, a
:class:`LazyTimer` keeps one handle: moving the deadline later only writes a float, and when the
handle fires early it re-arms for the current deadline; only an earlier deadline re-arms at once.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable


def _spent() -> None:
    """What a closed timer would call (it never arms again, but stays callable)."""


class LazyTimer:
    """Calls ``expire`` once the loop's clock passes ``deadline`` (which may move).

    ``expire`` may call :meth:`set` to wait longer (e.g. the reader was busy writing to a slow
    client: back-pressure, not upstream idleness)."""

    __slots__ = ("_armed_at", "_expire", "_handle", "_loop", "deadline")

    def __init__(self, loop: asyncio.AbstractEventLoop, expire: Callable[[], None]) -> None:
        self._loop = loop
        self._expire = expire
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf
        self.deadline = math.inf

    def set(self, deadline: float) -> None:
        """Expire at ``deadline`` (loop time); later than the armed time costs nothing."""
        self.deadline = deadline
        if deadline < self._armed_at:
            self._arm(deadline)

    def clear(self) -> None:
        """No deadline for now, lazily: an armed handle stays, fires and finds nothing due. So
        a timer that each request of a keep-alive connection sets and clears again costs a
        float per request, not a heap push and removal (:class:`~.connection.Connection`)."""
        self.deadline = math.inf

    def cancel(self) -> None:
        self.deadline = math.inf
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._armed_at = math.inf

    def close(self) -> None:
        """Cancel for good, and let go of ``expire``.

        ``expire`` is usually a bound method of the timer's owner, which holds the timer: a
        reference cycle that only the cyclic collector could free. At ~4 objects per request
        that was most of the young generation's garbage, and its collections were the router's
        p99 (30 ms pauses under load). Closed, the owner is freed by its reference count."""
        self.cancel()
        self._expire = _spent

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if when == math.inf:
            self._handle = None
        else:
            self._handle = self._loop.call_at(when, self._fire)
        self._armed_at = when

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        now = self._loop.time()
        if now < self.deadline:
            self._arm(self.deadline)
            return
        self.deadline = math.inf
        self._expire()  # which may set a later deadline (the owner had a reason to wait on)

    def __repr__(self) -> str:
        left = self.deadline - self._loop.time()
        return f"<LazyTimer {'off' if left == math.inf else f'{left:.3f}s'}>"
