"""Name resolution, cached per host with a TTL.

``loop.getaddrinfo`` runs in a thread (asyncio) or libuv's pool (uvloop): cheap once, costly per
connection under churn. The system resolver does not tell us the record's TTL, so entries live
a fixed time (aiohttp's ``ttl_dns_cache`` defaults to 10 s; we keep 300 s like our aiohttp
setup did, since upstream API endpoints rarely move). Both families are asked for and kept in the
resolver's order (RFC 6724), so an IPv6-only or dual-stack backend works; a failed address is
not remembered, the dialer just tries the next one.
"""

from __future__ import annotations

import asyncio
import socket

Address = tuple[int, str, int]  # family, host (numeric), port


class Resolver:
    """Caches ``getaddrinfo`` answers per (host, port) for ``ttl`` seconds."""

    __slots__ = ("_cache", "_inflight", "_loop", "ttl")

    def __init__(self, loop: asyncio.AbstractEventLoop, ttl: float = 300.0) -> None:
        self._loop = loop
        self.ttl = ttl
        self._cache: dict[tuple[str, int], tuple[float, list[Address]]] = {}
        # Concurrent lookups of one name share one query (no thundering herd at start).
        self._inflight: dict[tuple[str, int], asyncio.Future[list[Address]]] = {}

    async def resolve(self, host: str, port: int) -> list[Address]:
        """The addresses of ``host``; raises OSError (socket.gaierror) when it has none."""
        key = (host, port)
        entry = self._cache.get(key)
        if entry is not None and entry[0] > self._loop.time():
            return entry[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[list[Address]] = self._loop.create_future()
        self._inflight[key] = future
        try:
            addresses = await self._lookup(host, port)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(addresses)
            self._cache[key] = (self._loop.time() + self.ttl, addresses)
            return addresses
        finally:
            del self._inflight[key]

    async def _lookup(self, host: str, port: int) -> list[Address]:
        infos = await self._loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses: list[Address] = []
        for family, _, _, _, sockaddr in infos:
            address = (int(family), str(sockaddr[0]), int(sockaddr[1]))
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise socket.gaierror(f"no address for {host}")
        return addresses

    def __repr__(self) -> str:
        return f"<Resolver {len(self._cache)} hosts ttl={self.ttl:g}s>"
