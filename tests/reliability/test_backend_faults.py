"""Backends killed under load: one (and restarted on its port), then all of them.

Two fake upstreams run as processes on fixed ports; SIGKILL takes one away mid-load, with JSON
requests and slow streams in flight. The promises:

- while the other backend is healthy, no JSON request fails (each retries before its first byte);
- no stream is cut silently: each ends with ``[DONE]`` or with an SSE ``error`` event;
- the dead backend is ejected, probed while it stays dead, and taken back once it is restarted;
- with every backend dead, each request gets a fast 503 ``no_backend`` (or the 502 of a probe),
  and the upstream attempts are bounded by the probes; then both come back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    make_config,
)
from tests.functional.fake_process import REPO_ROOT, _read_ready
from tests.functional.router_process import RouterProcess, router_process
from tests.functional.scrape import scrape
from tests.redis_server import free_port
from tests.reliability.scan import assert_clean

SECRETS = (CLIENT_KEY, UPSTREAM_KEY_A, UPSTREAM_KEY_B)
HEALTH = {"failures_to_eject": 3, "cooldown": 0.5, "max_cooldown": 2.0}
JSON_WORKERS = 6
STREAM_WORKERS = 6
# A stream of 20 words, 30 ms apart: about 0.6 s, so some are always in flight on each backend.
STREAM_BODY = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Hello"}],
    "stream": True,
    "fake": {"words": 20, "chunk_delay": 0.03},
}
JSON_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}


class FakeServer:
    """A fake upstream process on a port of its own, which can be killed and started again."""

    def __init__(self, name: str, key: str) -> None:
        self.name = name
        self.key = key
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        args = [sys.executable, "-m", "benchmarks.fake_upstream", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--name", self.name, "--api-key", self.key]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.process = subprocess.Popen(
            args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        _read_ready(self.process)

    def kill(self) -> None:
        """SIGKILL: no close, no goodbye; open connections are reset."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    a, b = FakeServer("fake-a", UPSTREAM_KEY_A), FakeServer("fake-b", UPSTREAM_KEY_B)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


@dataclass
class Load:
    """What the clients saw: every JSON answer, every stream's ending, every body."""

    json: list[tuple[int, str | None]] = field(default_factory=list)  # status, backend
    streams: list[str] = field(default_factory=list)  # "done", "error" or "cut"
    bodies: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def _ending(text: str) -> str:
    events = [event for event in text.split("\n\n") if event.strip()]
    if not events:
        return "cut"
    if events[-1].strip() == "data: [DONE]":
        return "done"
    return "error" if events[-1].startswith("event: error") else "cut"


async def _json_worker(http: httpx.AsyncClient, load: Load) -> None:
    while not load.stop.is_set():
        response = await http.post("/chat/completions", json=JSON_BODY)
        load.json.append((response.status_code, response.headers.get("x-switchyard-backend")))
        load.bodies.append(response.text)


async def _stream_worker(http: httpx.AsyncClient, load: Load) -> None:
    while not load.stop.is_set():
        try:
            async with http.stream("POST", "/chat/completions", json=STREAM_BODY) as response:
                text = (await response.aread()).decode()
        except httpx.TransportError as exc:  # the router broke the response: a silent cut
            load.streams.append("cut")
            load.bodies.append(repr(exc))
            continue
        load.bodies.append(text)
        load.streams.append(_ending(text) if response.status_code == 200 else "refused")


def _client(router: RouterProcess) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    limits = httpx.Limits(max_connections=JSON_WORKERS + STREAM_WORKERS + 4)
    return httpx.AsyncClient(base_url=router.base_url, headers=headers, timeout=30, limits=limits)


async def _until(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)  # polling a condition with a deadline, not standing in for one
    return False


def _transitions(router: RouterProcess, backend: str, transition: str) -> float:
    metrics = scrape(f"{router.url}/metrics")
    return metrics.sum(
        "switchyard_backend_transitions_total", backend=backend, transition=transition
    )


@pytest.fixture
def router(tmp_path: Path, servers: tuple[FakeServer, FakeServer]) -> Iterator[RouterProcess]:
    """A router over both fakes, round-robin, with short cooldowns (0.5 s doubling to 2 s)."""
    backends = [{"name": s.name, "url": s.v1, "api_key": s.key} for s in servers]
    pool = {"strategy": "round-robin", "backends": backends}
    with router_process(make_config({"gpt-4o": pool}, health=HEALTH), tmp_path) as process:
        yield process


async def test_a_backend_killed_and_restarted_under_load(
    router: RouterProcess, servers: tuple[FakeServer, FakeServer]
) -> None:
    a, _ = servers
    load = Load()
    async with _client(router) as http:
        workers = [asyncio.create_task(_json_worker(http, load)) for _ in range(JSON_WORKERS)]
        workers += [asyncio.create_task(_stream_worker(http, load)) for _ in range(STREAM_WORKERS)]
        assert await _until(lambda: len(load.streams) >= STREAM_WORKERS, 20)
        a.kill()
        killed_at = len(load.json)
        assert await _until(lambda: _transitions(router, "fake-a", "ejection") >= 1, 10)
        assert await _until(lambda: len(load.json) >= killed_at + 50, 20)  # load goes on
        a.start()  # the same port
        restarted_at = len(load.json)

        def served() -> bool:
            return any(name == "fake-a" for _, name in load.json[restarted_at:])

        assert await _until(served, 20), "fake-a never came back"
        load.stop.set()
        await asyncio.gather(*workers)
    statuses = {status for status, _ in load.json}
    assert statuses == {200}, f"JSON requests failed: {sorted(statuses)}"
    assert "cut" not in load.streams, f"{load.streams.count('cut')} streams cut silently"
    assert "refused" not in load.streams
    assert load.streams.count("done") > STREAM_WORKERS
    assert _transitions(router, "fake-a", "recovery") >= 1
    assert _transitions(router, "fake-b", "ejection") == 0
    metrics = scrape(f"{router.url}/metrics").text
    assert_clean([*router.lines, metrics, *load.bodies], SECRETS)


async def _outage_requests(http: httpx.AsyncClient, seconds: float) -> list[httpx.Response]:
    """Four clients sending JSON requests back to back for ``seconds``."""
    answers: list[httpx.Response] = []
    deadline = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            answers.append(await http.post("/chat/completions", json=JSON_BODY))

    await asyncio.gather(*(client() for _ in range(4)))
    return answers


async def test_a_full_outage_answers_at_once_and_recovers(
    router: RouterProcess, servers: tuple[FakeServer, FakeServer]
) -> None:
    a, b = servers
    async with _client(router) as http:
        assert (await http.post("/chat/completions", json=JSON_BODY)).status_code == 200
        before = len(router.access())
        a.kill()
        b.kill()
        started = time.monotonic()
        answers = await _outage_requests(http, 3.0)
        elapsed = time.monotonic() - started
        assert {r.status_code for r in answers} <= {502, 503}
        refused = [r for r in answers if r.status_code == 503]
        for response in refused:
            assert response.json()["error"]["code"] == "no_backend"
            assert 1 <= int(response.headers["retry-after"]) <= HEALTH["max_cooldown"]
        # Every answer is quick: nothing waits on a dead backend.
        assert len(answers) / elapsed > 20, f"{len(answers)} answers in {elapsed:.1f} s"
        lines = router.wait_access(before + len(answers))[before:]
        attempts = sum(line["attempts"] for line in lines)
        probes = sum(_transitions(router, name, "probe") for name in ("fake-a", "fake-b"))
        # Upstream attempts: 3 failures to eject each backend, the requests already in flight
        # when it was ejected (4 clients), and one per probe. Nothing else reaches a backend.
        assert attempts <= 2 * (HEALTH["failures_to_eject"] + 4) + probes
        assert len(refused) >= len(answers) - attempts
        assert probes <= 2 * (3.0 / HEALTH["cooldown"] + 2)
        a.start()
        b.start()

        served: set[str] = set()
        deadline = time.monotonic() + 20
        while served != {"fake-a", "fake-b"}:  # each is probed back within max_cooldown
            assert time.monotonic() < deadline, f"only {served} were taken back"
            response = await http.post("/chat/completions", json=JSON_BODY)
            if response.status_code == 200:
                served.add(response.headers["x-switchyard-backend"])
            else:
                await asyncio.sleep(0.05)  # polling with a deadline
        final = [await http.post("/chat/completions", json=JSON_BODY) for _ in range(10)]
    assert all(r.status_code == 200 for r in final)
    metrics = scrape(f"{router.url}/metrics").text
    bodies = [r.text for r in (*answers, *final)]
    assert_clean([*router.lines, metrics, *bodies], SECRETS)
