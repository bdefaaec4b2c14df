"""Candidate 1: the floor's server with a ~60-line upstream client of our own.

The client runs on the loop's transports (``asyncio.Protocol``) and ``httptools`` (llhttp, the
parser of uvicorn) parses the answers: a LIFO keep-alive pool, bytes handed on as they arrive.
A measuring stick for issue 11, not the router's client: no timeouts, retries or proxies.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools
from aiohttp import web

from benchmarks import passthrough
from benchmarks.passthrough import UPSTREAM

# One read buffer for every connection: the bytes are parsed (and the body copied out by
# httptools) before the next read, so nothing outlives a read. A BufferedProtocol also spares
# the TLS layer its 256 KiB read allocation per record batch (uvloop's sslproto).
_READ = memoryview(bytearray(64 * 1024))


class Connection(asyncio.BufferedProtocol):
    """One keep-alive connection; ``httptools`` calls the ``on_*`` methods as it parses."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.content_type = b"application/json"
        self.headers_done = self.complete = self.closed = self.keep_alive = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def get_buffer(self, sizehint: int) -> memoryview:
        return _READ

    def buffer_updated(self, nbytes: int) -> None:
        self.parser.feed_data(_READ[:nbytes])

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.complete = True
        self._wake()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once complete
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def _wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    async def send(self, head: bytes, body: bytes) -> int:
        """Write the request; the status once the answer's headers are in."""
        self.headers_done = self.complete = False
        assert self.transport is not None
        self.transport.write(head + body)
        while not self.headers_done:
            if self.closed:
                raise ConnectionError("upstream closed the connection")
            await self._wait()
        return self.parser.get_status_code()

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            while self.chunks:
                yield self.chunks.popleft()
            if self.complete:
                return
            await self._wait()


class Pool:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.tls = ssl.create_default_context() if parts.scheme == "https" else None
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[Connection] = []
        self.head = f"POST {{}} HTTP/1.1\r\nHost: {parts.netloc}\r\n" + (
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n"
        )

    async def acquire(self) -> Connection:
        while self.idle:
            conn = self.idle.pop()  # last in, first out: the warmest connection
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Connection, self.host, self.port, ssl=self.tls)
        return conn

    def release(self, conn: Connection) -> None:
        if conn.complete and not conn.closed and conn.keep_alive:
            self.idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()


POOL = web.AppKey("pool", Pool)


async def proxy(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    pool = request.app[POOL]
    conn = await pool.acquire()
    try:
        status = await conn.send(pool.head.format(request.path_qs, len(body)).encode(), body)
        headers = {"Content-Type": conn.content_type.decode()}
        if not conn.content_type.startswith(b"text/event-stream"):
            answer = b"".join([chunk async for chunk in conn.body()])
            return web.Response(status=status, body=answer, headers=headers)
        out = web.StreamResponse(status=status, headers=headers)
        await out.prepare(request)
        async for chunk in conn.body():
            await out.write(chunk)
        return out
    finally:
        pool.release(conn)


async def _pool(app: web.Application) -> AsyncIterator[None]:
    app[POOL] = Pool(app[UPSTREAM])
    yield
    for conn in app[POOL].idle:
        if conn.transport is not None:
            conn.transport.close()


if __name__ == "__main__":
    passthrough.main("benchmarks.candidate_httptools", __doc__, proxy, _pool)
