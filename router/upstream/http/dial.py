"""Opening connections: DNS, TCP, TLS, and the CONNECT tunnel of an egress proxy.

With an egress proxy, plain HTTP goes to the proxy as absolute-URI requests (RFC 9112 §3.2.2)
and HTTPS goes through a ``CONNECT`` tunnel with TLS to the backend on top (``loop.start_tls``),
so the proxy sees neither the request nor the backend's credential. The proxy's own credential
(``http://user:pass@host:port``) is sent as ``Proxy-Authorization: Basic`` and is a secret: it
is never in a message or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

from router.upstream.http.connection import Connection, Home
from router.upstream.http.dns import Resolver
from router.upstream.http.errors import ConnectError
from router.upstream.http.tls import ResumingContext

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a backend is: scheme, host and port, and its ``Host`` header value."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("not an http(s) URL")
        return cls(parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme])

    @property
    def authority(self) -> str:
        """``host[:port]`` as the Host header spells it (IPv6 in brackets)."""
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return self.host_port.rpartition(":")[0]
        return self.host_port

    @property
    def host_port(self) -> str:
        """``host:port`` as CONNECT spells it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True, repr=False)
class Proxy:
    """An HTTP egress proxy. ``authorization`` is a secret: the repr leaves it out."""

    host: str
    port: int
    authorization: str | None

    @classmethod
    def of(cls, url: str) -> Proxy:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("the proxy must be an http:// URL")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(parts.hostname, parts.port or 80, authorization)

    def __repr__(self) -> str:
        return f"<Proxy {self.host}:{self.port}>"


class Dialer:
    """Opens connections to one origin, directly or through a proxy."""

    __slots__ = ("_buffer", "_loop", "_resolver", "origin", "proxy", "tls")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        origin: Origin,
        resolver: Resolver,
        tls: ResumingContext | None,
        proxy: Proxy | None,
    ) -> None:
        self._loop = loop
        self._resolver = resolver
        # The read buffer of this origin's connections (see Connection): 64 KiB, a TLS record
        # batch or a few loopback reads.
        self._buffer = memoryview(bytearray(64 * 1024))
        self.origin = origin
        self.tls = tls if origin.scheme == "https" else None
        self.proxy = proxy

    async def __call__(self, home: Home) -> Connection:
        if self.proxy is None:
            return await self._open(home, self.origin.host, self.origin.port, self.tls)
        conn = await self._open(home, self.proxy.host, self.proxy.port, None)
        if self.tls is not None:
            try:
                await self._tunnel(conn, self.tls)
            except BaseException:
                conn.abort()
                raise
        return conn

    async def _open(
        self, home: Home, host: str, port: int, tls: ResumingContext | None
    ) -> Connection:
        """A connection to the first address of ``host`` that answers."""
        try:
            addresses = await self._resolver.resolve(host, port)
        except OSError:
            raise ConnectError("the upstream's name did not resolve") from None
        failure: OSError | None = None
        for _family, address, address_port in addresses:
            conn = Connection(home, self._buffer)
            try:
                await self._loop.create_connection(
                    lambda conn=conn: conn,
                    address,
                    address_port,
                    ssl=tls,
                    server_hostname=self.origin.host if tls is not None else None,
                )
            except (OSError, ssl.SSLError) as exc:
                failure = exc
                continue
            if tls is not None:
                conn.keep_tls_session(tls, self.origin.host)
            return conn
        raise ConnectError(_describe(failure)) from None

    async def _tunnel(self, conn: Connection, tls: ResumingContext) -> None:
        """CONNECT to the origin through the proxy, then TLS to the origin inside it."""
        assert self.proxy is not None
        authority = self.origin.host_port
        lines = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if self.proxy.authorization is not None:
            lines += f"Proxy-Authorization: {self.proxy.authorization}\r\n"
        head = await conn.tunnel((lines + "\r\n").encode("latin-1"))
        status = head.split(b" ", 2)[1:2]
        if not status or not status[0].startswith(b"2"):
            code = status[0].decode("latin-1", "replace") if status else "no status"
            raise ConnectError(f"the proxy refused the tunnel ({code})")
        assert conn.transport is not None
        try:
            transport = await self._loop.start_tls(
                conn.transport, conn, tls, server_hostname=self.origin.host
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(_describe(exc)) from None
        conn.transport = cast(asyncio.Transport, transport)
        conn.keep_tls_session(tls, self.origin.host)


def _describe(exc: BaseException | None) -> str:
    """Why a connection failed, in words that hold no address or credential."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason})"
    if isinstance(exc, socket.gaierror):
        return "the upstream's name did not resolve"
    if isinstance(exc, OSError) and exc.strerror:
        return f"connection failed ({exc.strerror})"
    return "connection failed"
