"""The HTTP/1.1 client of one backend: its pool, its dialer, and the retry rule for reused
connections.

A request on the fast path costs: its bytes encoded once, one pooled connection popped, one
write, one loop timer, and two futures (head, body). No task, no per-chunk timer.

Sending a request twice is only safe when the upstream cannot have started on it. As Go's
net/http does (``transport.go``, ``shouldRetryRequest``), a request is sent again, once and on a
fresh connection, only if the connection it went out on had been reused *and* closed before a
single response byte arrived: the signature of a keep-alive connection the server closed as we
sent (the race every HTTP/1.1 client meets). The body is in memory, so it is replayable. A
timeout, a byte of an answer, or a fresh connection that fails is never retried here; the
forwarder decides what another backend may do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import urlsplit

from router.upstream.http.connection import Connection
from router.upstream.http.dial import Dialer, Origin, Proxy
from router.upstream.http.dns import Resolver
from router.upstream.http.errors import ConnectTimeout, DisconnectedError
from router.upstream.http.pool import ConnectionPool
from router.upstream.http.response import Limits, Response
from router.upstream.http.tls import ResumingContext, client_context
from router.upstream.http.wire import HeaderBlock, encode_request

_MAX_TARGETS = 1024


class HttpClient:
    """Requests to one origin (``scheme://host:port``) over a keep-alive pool.

    ``tls`` is the context for https (default: verified against the system store);
    ``proxy`` an ``http://[user:pass@]host:port`` egress proxy; ``limit`` bounds the pool;
    ``headers`` go with every request (the backend's credential) and win over a request's
    header of the same name.
    """

    __slots__ = ("_dialer", "_host", "_limits", "_loop", "_own", "_pool", "_targets", "origin")

    def __init__(
        self,
        url: str,
        *,
        limit: int,
        limits: Limits,
        resolver: Resolver,
        tls: ResumingContext | None = None,
        proxy: str | None = None,
        keepalive: float = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.origin = Origin.of(url)
        self._host = self.origin.authority
        egress = Proxy.of(proxy) if proxy is not None else None
        if self.origin.scheme == "https" and tls is None:
            tls = client_context()
        self._dialer = Dialer(self._loop, self.origin, resolver, tls, egress)
        self._pool = ConnectionPool(self._loop, self._dialer, limit=limit, keepalive=keepalive)
        self._limits = limits
        self._targets: dict[str, str] = {}
        own = dict(headers or {})
        # Plain HTTP through a proxy: absolute URIs, and the proxy's credential on each request.
        if egress is not None and self.origin.scheme == "http" and egress.authorization:
            own["Proxy-Authorization"] = egress.authorization
        self._own = HeaderBlock.of(own)  # encoded once; a line break in one raises here

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """Send a request; its :class:`Response` once the head has arrived."""
        started = self._loop.time()
        target = self._targets.get(url)  # _target's cache, looked up here: no call when known
        if target is None:
            target = self._target(url)
        data = encode_request(method, target, self._host, headers, body, self._own)
        conn = self._pool.take_idle()
        if conn is None:
            conn = await self._connect(started, fresh=False)
        # The first exchange inline (not through _exchange): no coroutine of its own.
        response = Response(self._loop, self._limits, started, conn)
        conn.send(response, data)
        try:
            await response.head()
            return response
        except DisconnectedError as exc:
            response.close()
            if not conn.reused or exc.received:
                raise
        except BaseException:
            response.close()
            raise
        return await self._exchange(await self._connect(started, fresh=True), data, started)

    async def _exchange(self, conn: Connection, data: bytes, started: float) -> Response:
        """Send on a fresh connection; the response once its head has arrived."""
        response = Response(self._loop, self._limits, started, conn)
        conn.send(response, data)
        try:
            await response.head()
        except BaseException:
            response.close()
            raise
        return response

    async def _connect(self, started: float, *, fresh: bool) -> Connection:
        """A connection within the connect limit (waiting for a pool slot included)."""
        try:
            async with asyncio.timeout_at(started + self._limits.connect):
                if fresh:
                    return await self._pool.connect()
                return await self._pool.acquire()
        except TimeoutError:
            raise ConnectTimeout("no connection to the upstream in time") from None

    def _target(self, url: str) -> str:
        """The request target of a URL not in the cache yet: origin-form, or absolute-form
        through a plain-HTTP proxy."""
        parts = urlsplit(url)
        if Origin.of(url) != self.origin:
            raise ValueError("the URL is not on this client's origin")
        if self._dialer.proxy is not None and self.origin.scheme == "http":
            target = url
        else:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if len(self._targets) < _MAX_TARGETS:  # stored objects' URLs are one per id
            self._targets[url] = target
        return target

    async def close(self) -> None:
        """Close the pool's idle connections; nothing is sent from here on."""
        await self._pool.close()

    def __repr__(self) -> str:
        via = " via proxy" if self._dialer.proxy is not None else ""
        return f"<HttpClient {self.origin.scheme}://{self.origin.authority}{via} {self._pool!r}>"
