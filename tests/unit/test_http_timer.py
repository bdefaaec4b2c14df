"""The upstream client's one-timer-per-request and its DNS cache."""

from __future__ import annotations

import asyncio
import functools
import gc
import socket

from router.upstream.http.connection import Connection
from router.upstream.http.dns import Address, Resolver
from router.upstream.http.response import Limits, Response
from router.upstream.http.timer import LazyTimer
from tests.http_script import on_uvloop


class Home:
    """Where a connection goes back (the pool's part): records whether it was reusable."""

    def __init__(self) -> None:
        self.released: list[bool] = []

    def release(self, conn: Connection, reusable: bool) -> None:
        self.released.append(reusable)


def _same(conn: Connection) -> Connection:
    return conn


class Expiry:
    """Records when a timer expired."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fired: list[float] = []
        self.done = asyncio.Event()

    def __call__(self) -> None:
        self.fired.append(self.loop.time())
        self.done.set()


@on_uvloop
async def test_a_later_deadline_keeps_the_armed_handle_and_still_expires_late() -> None:
    loop = asyncio.get_running_loop()
    expiry = Expiry(loop)
    timer = LazyTimer(loop, expiry)
    start = loop.time()
    timer.set(start + 0.05)
    handle = timer._handle
    timer.set(start + 0.15)  # later: only a float is written
    assert timer._handle is handle
    await asyncio.wait_for(expiry.done.wait(), 20)
    assert expiry.fired[0] >= start + 0.15


@on_uvloop
async def test_an_earlier_deadline_rearms_and_cancel_stops_it() -> None:
    loop = asyncio.get_running_loop()
    expiry = Expiry(loop)
    timer = LazyTimer(loop, expiry)
    timer.set(loop.time() + 60)
    timer.set(loop.time() + 0.01)
    await asyncio.wait_for(expiry.done.wait(), 20)
    timer.set(loop.time() + 0.01)
    timer.cancel()
    await asyncio.sleep(0.05)
    assert len(expiry.fired) == 1
    assert "off" in repr(timer)


class CountingResolver(Resolver):
    def __init__(self, loop: asyncio.AbstractEventLoop, ttl: float) -> None:
        super().__init__(loop, ttl)
        self.lookups = 0

    async def _lookup(self, host: str, port: int) -> list[Address]:
        self.lookups += 1
        await asyncio.sleep(0.01)
        return await super()._lookup(host, port)


@on_uvloop
async def test_resolver_caches_per_host_and_shares_concurrent_lookups() -> None:
    resolver = CountingResolver(asyncio.get_running_loop(), ttl=300)
    answers = await asyncio.gather(*(resolver.resolve("localhost", 80) for _ in range(5)))
    assert resolver.lookups == 1
    assert all(answer == answers[0] for answer in answers)
    assert (await resolver.resolve("::1", 443))[0][1] == "::1"
    assert resolver.lookups == 2
    await resolver.resolve("localhost", 80)
    assert resolver.lookups == 2


@on_uvloop
async def test_resolver_asks_again_after_the_ttl() -> None:
    resolver = CountingResolver(asyncio.get_running_loop(), ttl=0)
    await resolver.resolve("127.0.0.1", 80)
    await resolver.resolve("127.0.0.1", 80)
    assert resolver.lookups == 2


@on_uvloop
async def test_a_finished_response_is_freed_without_the_cyclic_collector() -> None:
    # A response holds its timer, which held the response's bound expiry: a cycle per request
    # that only the cyclic GC freed (its 30 ms pauses were the router's p99 under load).
    loop = asyncio.get_running_loop()
    home = Home()
    gc.collect()
    gc.disable()
    try:
        for ended in (True, False):  # read to its end; closed early (a client that left)
            near, far = socket.socketpair()
            conn = Connection(home, memoryview(bytearray(1024)))
            await loop.connect_accepted_socket(functools.partial(_same, conn), near)
            response = Response(loop, Limits(), loop.time(), conn)
            conn.send(response, b"GET / HTTP/1.1\r\n\r\n")
            far.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n{}" % (2 if ended else 5))
            await response.head()
            if ended:
                assert await response.read() == b"{}"
            response.close()
            del response
            far.close()
        assert not [obj for obj in gc.get_objects() if type(obj) is Response]
        assert home.released == [True, False]
    finally:
        gc.enable()
