"""Scripted HTTP peers on loopback for the upstream client's wire tests.

Each accepted connection runs the test's script with a :class:`Peer`, which reads requests and
writes exact bytes (httpcore's ``AsyncMockBackend`` and mitmproxy's ``Playbook``, on real
sockets). Nothing here parses HTTP beyond finding a request's end.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Awaitable, Callable, Coroutine

import uvloop

Script = Callable[["Peer"], Awaitable[None]]


class Peer:
    """One connection accepted by a :class:`ScriptedServer`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.requests: list[bytes] = []

    async def request(self) -> bytes:
        """The next request, head and body; ``b""`` if the client closed instead."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return b""
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        request = head + await self.reader.readexactly(length)
        self.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def closed_by_client(self) -> bool:
        """Wait for the client to close; True if it did without sending anything more."""
        return await self.reader.read(1) == b""

    def close(self) -> None:
        self.writer.close()


class ScriptedServer:
    """Runs ``script`` for every connection; counts connections and keeps the requests."""

    def __init__(
        self, script: Script, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> None:
        self._script = script
        self._host = host
        self._tls = tls
        self.connections = 0
        self.peers: list[Peer] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, scheme: str = "http", name: str | None = None) -> str:
        host = name or (f"[{self._host}]" if ":" in self._host else self._host)
        return f"{scheme}://{host}:{self.port}"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, self._host, 0, ssl=self._tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for peer in self.peers:
            peer.writer.transport.abort()  # every script's read or write now fails: it ends
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        peer = Peer(reader, writer)
        self.peers.append(peer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._script(peer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)


async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy bytes one way until the source ends, then close the sink."""
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, RuntimeError):  # the other side is gone
        pass
    sink.close()


class ScriptedProxy:
    """A tiny egress proxy: a CONNECT request is tunnelled to ``target_port`` on loopback;
    any other request is answered ``reply``. Every request head is kept."""

    def __init__(self, target_port: int, reply: bytes = b"") -> None:
        self.target_port = target_port
        self.reply = reply or b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        self.heads: list[bytes] = []

    async def __call__(self, peer: Peer) -> None:
        head = await peer.request()
        self.heads.append(head)
        if not head.startswith(b"CONNECT "):
            await peer.send(self.reply)
            return
        reader, writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await peer.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(peer.reader, writer), pipe(reader, peer.writer))


def on_uvloop(test: Callable[..., Coroutine[None, None, None]]) -> Callable[..., None]:
    """Run an async test on uvloop, the router's loop (its transports are not asyncio's)."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        uvloop.run(test(*args, **kwargs))

    return run
