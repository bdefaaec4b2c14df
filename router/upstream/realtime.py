"""Open a realtime session's upstream WebSocket: one upgrade on one backend, as an attempt of the
HTTP forwarder (:mod:`router.upstream.forward`), which picks, retries on another backend and falls
back by the same rules and budget, with the same metrics. Everything happens before the client's
own upgrade is answered. Each try reports to the backend's health through the same
:mod:`router.upstream.report` an HTTP attempt uses. The handshake's latency is not fed to the
latency estimate: it says nothing about how fast the backend answers a completion, which is what
``least-latency`` compares.

A dialed session counts as one request in flight on its backend until it is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal

import aiohttp

from router.upstream import report
from router.upstream.backend import Backend
from router.upstream.errors import TRANSPORT_ERRORS, from_upgrade
from router.upstream.forward import Attempt
from router.upstream.route import Route

# Largest message either side may send. OpenAI's largest realtime events carry base64 audio
# (input_audio_buffer.append takes up to 15 MiB); a larger message closes the session with 1009.
# Memory per session is a few reads of the socket plus, at worst, one message in hand each way.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# How long a close waits for the peer's closing handshake; the close frame itself leaves at once.
CLOSE_TIMEOUT = 2.0

_WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT)

UpstreamSocket = aiohttp.ClientWebSocketResponse[Literal[False]]


@dataclass(frozen=True, slots=True)
class DialRequest:
    """What the client asked for, as the upstream must hear it (never the client's key)."""

    beta: bool
    request_id: str
    user_agent: str | None = None

    def headers(self, backend: Backend) -> dict[str, str]:
        headers = {"X-Client-Request-Id": self.request_id}
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        if self.beta:
            headers["OpenAI-Beta"] = "realtime=v1"
        headers.update(backend.headers)  # the backend's own credential last: it always wins
        return headers


class Upstream:
    """A dialed upstream WebSocket and its backend; :meth:`release` frees the slot (once)."""

    __slots__ = ("_released", "backend", "ws")

    def __init__(self, backend: Backend, ws: UpstreamSocket) -> None:
        self.backend = backend
        self.ws = ws
        self._released = False

    async def close(self, code: int, reason: bytes) -> None:
        """Close the socket (if still open) and free the backend slot."""
        try:
            if not self.ws.closed:
                await self.ws.close(code=code, message=reason)
        finally:
            self.release()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.backend.end()

    def __repr__(self) -> str:
        state = "closed" if self.ws.closed else "open"
        return f"<Upstream {self.backend.name} {state} released={self._released}>"


def dial_attempt(request: DialRequest) -> Attempt[Upstream]:
    """The forwarder's attempt for a realtime session: one upgrade on one backend."""

    def attempt(backend: Backend, route: Route) -> Awaitable[Upstream]:
        return _attempt(backend, request)

    return attempt


async def _attempt(backend: Backend, request: DialRequest) -> Upstream:
    """One upgrade on one backend, bounded by its connect timeout (TCP, TLS and the 101)."""
    state = backend.state
    backend.begin()
    try:
        async with asyncio.timeout(backend.timeouts.connect):
            ws = await backend.session.ws_connect(
                backend.urls["realtime"],
                headers=request.headers(backend),
                timeout=_WS_TIMEOUT,
                autoclose=False,  # the relay answers a close with the code it forwards
                autoping=True,
                max_msg_size=MAX_MESSAGE_BYTES,
                compress=0,  # frames are relayed as they are, never inflated and deflated again
                decode_text=False,  # text stays bytes: forwarded, not decoded and re-encoded
            )
    except aiohttp.WSServerHandshakeError as exc:
        backend.end()
        error = from_upgrade(exc, backend.name)
        report.refused(state, error, exc.status, time.monotonic())
        raise error from None
    except TRANSPORT_ERRORS as exc:
        backend.end()
        raise report.failed(state, exc, backend.name) from None
    except BaseException:  # cancelled: the client went away during the dial
        backend.end()
        report.abandoned(state)
        raise
    report.answered(state, time.monotonic())  # a handshake's time says nothing of completions
    return Upstream(backend, ws)
