"""Slow and greedy clients: header and body timeouts (408 JSON, then closed), and the
connection cap (503 at once past it, descriptors bounded).

Today's router failed all of it: stalled connections stayed open (50 still open after 130 s,
1,100 connections held 1,100 descriptors) and nothing capped them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable
from pathlib import Path

import orjson

from tests.functional.conftest import CLIENT_KEY
from tests.reliability.edge_env import SECRETS, edge_env, wait_for
from tests.reliability.hostile import parse_responses
from tests.reliability.scan import assert_clean

HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: router\r\n"
    b"Authorization: Bearer " + CLIENT_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
)
BODY = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
DEADLINE = 20.0  # generous: a loaded 2-core machine


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _until_closed(
    address: tuple[str, int], first: bytes, trickle: bytes = b""
) -> tuple[bytes, float]:
    """Connect, send ``first``, then one byte of ``trickle`` every 0.2 s (slowloris) until the
    router closes; what it sent back, and after how long."""
    reader, writer = await asyncio.open_connection(*address)
    started = time.monotonic()
    writer.write(first)
    received = bytearray()

    async def drip() -> None:
        for byte in trickle:
            await asyncio.sleep(0.2)  # the attack's pace, not a synchronisation
            writer.write(bytes([byte]))

    dripping = asyncio.create_task(drip(), name="slowloris-drip")
    try:
        async with asyncio.timeout(DEADLINE):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionResetError:
        pass
    finally:
        dripping.cancel()
        writer.close()
    return bytes(received), time.monotonic() - started


def _timed_out(received: bytes) -> bool:
    """One 408 in OpenAI's JSON shape, with Connection: close."""
    [(status, headers, body)] = parse_responses(received, "GET")
    error = orjson.loads(body)["error"]
    return (
        status == 408
        and headers["content-type"].startswith("application/json")
        and headers.get("connection") == "close"
        and error["code"] == "request_timeout"
    )


def test_stalled_heads_and_bodies_get_408_and_are_closed(tmp_path: Path) -> None:
    with edge_env(tmp_path, header_timeout=1, body_timeout=1) as edge:
        pid = edge.router.process.pid
        baseline = _fds(pid)
        trickle = b"X-Slow: " + b"a" * 200  # a byte every 0.2 s: 40 s if it reset the clock
        body_head = HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:10]

        async def storm() -> list[tuple[bytes, float]]:
            clients: list[Awaitable[tuple[bytes, float]]] = []
            clients += [_until_closed(edge.address, HEAD, trickle) for _ in range(25)]
            clients += [_until_closed(edge.address, body_head) for _ in range(25)]
            clients += [_until_closed(edge.address, b"") for _ in range(5)]  # never a byte
            return await asyncio.gather(*clients)

        results = asyncio.run(storm())
        edge.router.wait_access(25)  # the bodies' 408s: access lines trail their answers
        lines = list(edge.router.lines)
        settled = wait_for(lambda: _fds(pid) <= baseline + 2)

    slow_heads, slow_bodies, silent = results[:25], results[25:50], results[50:]
    assert all(_timed_out(received) for received, _ in slow_heads + slow_bodies)
    # Closed by the router, measured to the end of the head (not reset by each byte).
    assert max(elapsed for _, elapsed in slow_heads + slow_bodies) < DEADLINE / 2
    assert all(received == b"" for received, _ in silent)  # idle: closed without a word
    assert settled, "descriptors of the closed connections were not released"
    access = [orjson.loads(line) for line in lines if '"switchyard.access"' in line]
    assert sum(1 for record in access if record["status"] == 408) == 25  # the bodies
    assert_clean([*lines, *(received.decode() for received, _ in results)], SECRETS)


def test_connections_past_the_cap_get_503_at_once(tmp_path: Path) -> None:
    cap = 20
    with edge_env(tmp_path, max_connections=cap, header_timeout=60) as edge:
        pid = edge.router.process.pid
        baseline = _fds(pid)
        request = b"GET /healthz HTTP/1.1\r\nHost: router\r\nConnection: close\r\n\r\n"

        async def flood() -> tuple[list[tuple[bytes, float]], bool, bytes]:
            held = [await asyncio.open_connection(*edge.address) for _ in range(cap)]
            assert await asyncio.to_thread(wait_for, lambda: _fds(pid) >= baseline + cap)
            refused = await asyncio.gather(
                *(_until_closed(edge.address, request) for _ in range(200))
            )
            # Past the cap the router holds no more than the cap (and a lingering few).
            bounded = await asyncio.to_thread(wait_for, lambda: _fds(pid) <= baseline + cap + 2)
            for _, writer in held:
                writer.close()
            await asyncio.to_thread(wait_for, lambda: _fds(pid) <= baseline + 2)
            served, _ = await _until_closed(edge.address, request)
            return refused, bounded, served

        refused, bounded, served = asyncio.run(flood())
        lines = list(edge.router.lines)

    for received, elapsed in refused:
        [(status, headers, body)] = parse_responses(received, "GET")
        assert status == 503
        assert headers["retry-after"] == "1"
        assert orjson.loads(body)["error"]["code"] == "too_many_connections"
        assert elapsed < DEADLINE / 4  # at once: the header timeout is 60 s
    assert bounded
    assert parse_responses(served, "GET")[0][0] == 200  # room again once the held ones left
    assert sum(1 for line in lines if "max_connections reached" in line) >= 1
    assert_clean(lines, SECRETS)
