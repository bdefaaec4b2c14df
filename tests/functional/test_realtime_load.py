"""/v1/realtime under load: many open sessions in one worker, and back-pressure on a slow client.

Both read the router's memory from ``/proc``: what an open session costs (``VmRSS`` before and
after opening them), and the most the router ever held while a flood passed (``VmHWM``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from tests.functional.conftest import CLIENT_KEY, UPSTREAM_KEY_A, Fake, RouterFactory
from tests.functional.realtime_client import peak_rss_kib, realtime_url, receive_json, rss_kib
from tests.functional.router_process import RouterProcess
from tests.functional.test_realtime import one_backend

SESSIONS = 200
WARM_UP = 10
# Generous: a leak or a buffer per session shows up as hundreds of KiB, the real cost is tens.
MAX_KIB_PER_SESSION = 200
HEADERS = {"Authorization": f"Bearer {CLIENT_KEY}"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # No connection limit: each open WebSocket holds its connection.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def _open(
    http: aiohttp.ClientSession, router: RouterProcess
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(realtime_url(router), headers=HEADERS)
    assert (await receive_json(ws))["type"] == "session.created"  # open end to end
    return ws


async def _open_many(
    http: aiohttp.ClientSession, router: RouterProcess, count: int
) -> list[aiohttp.ClientWebSocketResponse]:
    return list(await asyncio.gather(*(_open(http, router) for _ in range(count))))


async def test_many_idle_sessions_in_one_worker(
    start_router: RouterFactory, fake_a: Fake, http: aiohttp.ClientSession
) -> None:
    router = one_backend(start_router, fake_a, UPSTREAM_KEY_A)
    pid = router.process.pid
    # The first sessions pay for what every later one shares: imports, pools, caches.
    for ws in await _open_many(http, router, WARM_UP):
        await ws.close()
    await asyncio.to_thread(router.wait_access, WARM_UP)
    before = rss_kib(pid)
    sockets = await _open_many(http, router, SESSIONS)
    after = rss_kib(pid)
    per_session = (after - before) / SESSIONS
    print(
        f"\nrealtime: {SESSIONS} open sessions, router RSS {before} -> {after} KiB:"
        f" {per_session:.1f} KiB per session"
    )
    assert per_session < MAX_KIB_PER_SESSION
    await asyncio.gather(*(ws.close() for ws in sockets))
    lines = await asyncio.to_thread(router.wait_access, WARM_UP + SESSIONS)
    assert {line["ended"] for line in lines} == {"completed"}
    assert len(await asyncio.to_thread(fake_a.sessions, ended=WARM_UP + SESSIONS)) == 210


async def test_slow_client_slows_the_upstream(
    start_router: RouterFactory, fake_a: Fake, http: aiohttp.ClientSession
) -> None:
    """64 MiB flow to a client that reads slowly: the router holds a few frames, not the flood."""
    router = one_backend(start_router, fake_a, UPSTREAM_KEY_A)
    frames, size = 256, 256 * 1024
    ws = await _open(http, router)
    peak_before = peak_rss_kib(router.process.pid)
    await ws.send_str(
        orjson.dumps({"type": "fake.flood", "frames": frames, "bytes": size}).decode()
    )
    for seq in range(frames):
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.TEXT
        chunk = orjson.loads(msg.data)
        assert (chunk["seq"], len(chunk["pad"])) == (seq, size)  # in order, whole
        await asyncio.sleep(0.002)  # the slow reader itself, not a wait for anything
    peak_after = peak_rss_kib(router.process.pid)
    await ws.close()
    print(
        f"\nrealtime: 64 MiB to a slow client, router peak RSS grew {peak_after - peak_before} KiB"
    )
    assert peak_after - peak_before < 16 * 1024
