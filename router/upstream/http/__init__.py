"""Switchyard's upstream HTTP/1.1 client: lean, on the event loop's transports, llhttp parsing.

Why our own: aiohttp's ``ClientSession`` was ~70% of a naive proxy's CPU per request; a client
on ``asyncio.Protocol`` + ``httptools`` did the same proxying at 3.1-3.4x its speed (issue 11).

Read in order: :mod:`.wire` (bytes in and out, no I/O), :mod:`.response` (a response's body and
limits), :mod:`.connection` (the protocol), :mod:`.pool`, :mod:`.dial` (DNS, TCP, TLS, proxy),
:mod:`.client` (one backend's client). :mod:`.errors` is what it raises.

The router sees only :class:`UpstreamClient` and :class:`UpstreamResponse`: another client
(``pyreqwest``, for one) fits behind them without the forwarder or the relay noticing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from router.upstream.http.client import HttpClient
from router.upstream.http.dns import Resolver
from router.upstream.http.errors import (
    BrokenBodyError,
    ConnectError,
    ConnectTimeout,
    DisconnectedError,
    HttpClientError,
    ProtocolError,
    ReadTimeout,
)
from router.upstream.http.response import Limits, Response
from router.upstream.http.tls import client_context


class UpstreamResponse(Protocol):
    """A response whose head has arrived; ``headers`` have lower-case names, repeated ones
    joined by ", ". They are the headers the router reads (content-*, transfer-encoding,
    retry-after*, x-*, openai-*): the others describe the provider's site and are dropped."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes:
        """The whole body."""
        ...

    async def next_chunk(self) -> bytes:
        """The next piece of the body as it arrived; ``b""`` at the end."""
        ...

    @property
    def ready(self) -> bool:
        """The next piece (or the end) is here: :meth:`next_chunk` would not wait."""
        ...

    @property
    def drained(self) -> bool:
        """The body has ended and every piece of it has been read."""
        ...

    def close(self) -> None:
        """Done with it (idempotent)."""
        ...


class UpstreamClient(Protocol):
    """One backend's client: the one seam between the router and the HTTP stack.

    ``headers`` are the request's own: the backend's (its credential) are given to the client
    when it is made, sent with every request, and win over a request's header of the same name.
    """

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> UpstreamResponse: ...

    async def close(self) -> None: ...


__all__ = [
    "BrokenBodyError",
    "ConnectError",
    "ConnectTimeout",
    "DisconnectedError",
    "HttpClient",
    "HttpClientError",
    "Limits",
    "ProtocolError",
    "ReadTimeout",
    "Resolver",
    "Response",
    "UpstreamClient",
    "UpstreamResponse",
    "client_context",
]
