"""Clients that leave: a storm of 2,000 disconnects, and a client that leaves mid-answer.

Each disconnect must cancel its upstream request, be logged and counted as 499 (nginx's code),
and free its slot; memory must not grow with the count. Today's router logged 2 of 6,000 as
200: it logged a request when the handler returned, before aiohttp wrote the answer, and
counted a stream whose write found the client gone as 200 too.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import orjson

from tests.functional.conftest import CLIENT_KEY, Fake
from tests.functional.scrape import scrape
from tests.reliability.edge_env import METRICS_TOKEN, SECRETS, Edge, edge_env, wait_for
from tests.reliability.scan import assert_clean

BATCH = 100
ROUNDS = 20  # after one warm-up round: 2,000 disconnects measured
DEADLINE = 30.0
_MESSAGES = [{"role": "user", "content": "hi"}]


def _request(path: str, payload: dict[str, object]) -> bytes:
    body = orjson.dumps(payload)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: router\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# The upstream holds its answer (a minute), or streams one event and then holds the rest.
WAITING = _request(
    "/v1/chat/completions",
    {"model": "gpt-4o", "messages": _MESSAGES, "fake": {"delay_first_byte": 60}},
)
STREAMING = _request(
    "/v1/chat/completions",
    {"model": "gpt-4o", "stream": True, "messages": _MESSAGES, "fake": {"chunk_delay": 60}},
)


def _total(fakes: tuple[Fake, Fake], field: str) -> int:
    return sum(fake.stats()[field] for fake in fakes)


async def _round(edge: Edge, streaming: bool, cancelled_before: int) -> None:
    """BATCH clients send, wait until every upstream has their request (or, streaming, until
    each got its first event), then all leave; returns once the upstream saw every cancel."""
    opened = [await asyncio.open_connection(*edge.address) for _ in range(BATCH)]
    for _, writer in opened:
        writer.write(STREAMING if streaming else WAITING)
    if streaming:
        async with asyncio.timeout(DEADLINE):
            for reader, _ in opened:
                await reader.readuntil(b"data: ")
    else:
        arrived = await asyncio.to_thread(wait_for, lambda: _total(edge.fakes, "inflight") == BATCH)
        assert arrived, "the upstream did not get every request"
    for _, writer in opened:
        writer.close()
    target = cancelled_before + BATCH
    cancelled = await asyncio.to_thread(wait_for, lambda: _total(edge.fakes, "cancelled") >= target)
    assert cancelled, f"{target - _total(edge.fakes, 'cancelled')} upstream requests not cancelled"


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


def test_a_storm_of_disconnects_cancels_upstream_and_logs_499(tmp_path: Path) -> None:
    with edge_env(tmp_path) as edge:
        pid = edge.router.process.pid
        asyncio.run(_round(edge, False, 0))  # warm-up: pools, caches, metric children
        rss_before = _rss_kb(pid)
        for number in range(ROUNDS):
            asyncio.run(_round(edge, number % 2 == 1, (number + 1) * BATCH))
        total = (ROUNDS + 1) * BATCH
        access = edge.router.wait_access(total, timeout=DEADLINE)
        rss_after = _rss_kb(pid)
        metrics_url = f"{edge.router.url}/metrics"
        idle = wait_for(
            lambda: (
                scrape(metrics_url, token=METRICS_TOKEN).sum("switchyard_inflight_requests") == 0
            )
        )
        reading = scrape(metrics_url, token=METRICS_TOKEN)
        stats = [fake.stats() for fake in edge.fakes]
        lines = list(edge.router.lines)

    assert len(access) == total
    assert {(r["status"], r["outcome"]) for r in access} == {(499, "client_disconnect")}
    assert sum(1 for r in access if r["stream"]) == ROUNDS // 2 * BATCH
    assert sum(s["requests"] for s in stats) == sum(s["cancelled"] for s in stats) == total
    assert idle, "a backend slot was never released"
    assert reading.sum("switchyard_requests_total", endpoint="chat", code="4xx") == total
    assert reading.sum("switchyard_requests_total", code="2xx") == 0
    assert rss_after - rss_before < 16 * 1024, f"RSS grew {rss_after - rss_before} KB"
    assert_clean([*lines, reading.text], SECRETS)


def test_a_client_gone_before_a_large_answer_is_delivered_is_499(tmp_path: Path) -> None:
    """The answer is built (a ~10 MB embeddings body) and being written when the client
    resets the connection: not delivered, so 499, where today's router logged 200."""
    inputs = [f"text {n}" for n in range(8)]
    request = _request(
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": inputs, "dimensions": 65_536},
    )
    with edge_env(tmp_path) as edge:
        for _ in range(3):
            sock = socket.socket()
            # A small window: the answer cannot all sit in kernel buffers, so the router is
            # still writing it when the client leaves.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(DEADLINE)
            sock.connect(edge.address)
            sock.sendall(request)
            assert sock.recv(16).startswith(b"HTTP/1.1 200")  # the answer has begun
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset, as a client killed mid-download
        access = edge.router.wait_access(3, timeout=DEADLINE)
        lines = list(edge.router.lines)

    assert [(r["status"], r["outcome"]) for r in access] == [(499, "client_disconnect")] * 3
    assert_clean(lines, SECRETS)
