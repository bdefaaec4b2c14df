"""Redis killed (SIGKILL) and restarted empty under load, with fail_open and with fail_closed.

Clients send requests back to back the whole time. While Redis is down, fail_open admits them
unchecked and fail_closed answers 503 in OpenAI's shape; nothing is a 500 or a traceback. Once
Redis is back (no data, no scripts), limits are checked again by themselves, and a burst on a
concurrency-limited key admits exactly its limit. Every unchecked decision is counted by reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
import redis

from router.limits.redis import _script
from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.scrape import scrape
from tests.redis_server import RedisServer
from tests.reliability.burst import burst
from tests.reliability.scan import assert_clean

STEADY = "sk-test-steady-key-0123456789"
BURSTY = "sk-test-bursty-key-0123456789"
SECRETS = (STEADY, BURSTY, CLIENT_KEY, UPSTREAM_KEY_A, UPSTREAM_KEY_B)
CLIENTS = 8
PER_PHASE = 30  # answers to requests sent in each phase before moving on
PHASE_TIMEOUT = 20.0
CONCURRENCY = 20


@dataclass
class Answer:
    phase: str  # when the request was sent
    answered: str  # when its answer came
    status: int
    checked: bool  # it carried x-ratelimit headers: the limiter asked Redis
    body: str


@dataclass
class Load:
    """``CLIENTS`` clients sending chat requests back to back, each answer kept with the phase
    its request was sent in."""

    url: str
    phase: str = "up"
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await asyncio.gather(*(self._client(http) for _ in range(CLIENTS)))

    async def _client(self, http: aiohttp.ClientSession) -> None:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
        headers = {"Authorization": f"Bearer {STEADY}"}
        while not self.stop.is_set():
            phase = self.phase
            async with http.post(f"{self.url}/chat/completions", json=body, headers=headers) as r:
                checked = "x-ratelimit-limit-requests" in r.headers
                text = await r.text()
                self.answers.append(Answer(phase, self.phase, r.status, checked, text))

    def count(self, phase: str, *, checked: bool | None = None) -> int:
        return sum(
            1
            for a in self.answers
            if a.phase == phase and (checked is None or a.checked is checked)
        )

    async def until(self, phase: str, *, checked: bool | None = None) -> None:
        """Wait (polling, bounded) for ``PER_PHASE`` such answers to requests sent in ``phase``."""
        deadline = time.monotonic() + PHASE_TIMEOUT
        while self.count(phase, checked=checked) < PER_PHASE:
            assert time.monotonic() < deadline, f"{phase}: {self.count(phase)} answers"
            await asyncio.sleep(0.02)  # polling with a deadline


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def config(fake: Fake, server: RedisServer, failure: str) -> dict[str, Any]:
    built = make_config({"gpt-4o": {"backends": [backend(fake, UPSTREAM_KEY_A)]}})
    built["keys"] += [
        {"name": "steady", "key": STEADY, "limits": {"rpm": 10**6, "concurrency": 100}},
        {"name": "bursty", "key": BURSTY, "limits": {"concurrency": CONCURRENCY}},
    ]
    # A timeout a loaded machine meets: only the kill, never a slow test host, fails a call
    # (500 ms was met: a burst of 60 right after the restart reloads the script first, and on a
    # 2-core host running other suites that took longer). The kill is seen at once either way:
    # a refused connection does not wait for the timeout.
    built["redis"] = {"url": server.url, "failure": failure, "timeout_ms": 2000}
    return built


@pytest.mark.parametrize("failure", ["fail_open", "fail_closed"])
async def test_redis_killed_and_restarted_under_load(
    start_router: RouterFactory, fake_a: Fake, redis_server: RedisServer, failure: str
) -> None:
    router = start_router(config(fake_a, redis_server, failure))
    load = Load(router.base_url)
    running = asyncio.create_task(load.run())
    try:
        await load.until("up", checked=True)
        redis_server.kill()
        load.phase = "down"
        await load.until("down")
        redis_server.start()  # same port, empty: no keys, no scripts
        load.phase = "back"
        await load.until("back", checked=True)
    finally:
        load.stop.set()
        await running
    _assert_answers(load, failure)
    metrics = scrape(f"{router.url}/metrics")
    _assert_counted(metrics, load, failure)
    assert _script_loaded(redis_server)  # the empty server got the script back by itself
    after = await burst(router.base_url, BURSTY, fake_a, 3 * CONCURRENCY)
    assert (after.held, after.statuses()) == (CONCURRENCY, {429: 2 * CONCURRENCY})
    logged = [r for r in router.records() if r.get("msg") == "rate-limit store unavailable"]
    assert logged
    assert {r["reason"] for r in logged} <= {"connection", "timeout"}
    bodies = [a.body for a in load.answers] + [body for _, body in after.answers]
    assert_clean([*router.lines, metrics.text, *bodies], SECRETS)


def _assert_answers(load: Load, failure: str) -> None:
    # Sent and answered while Redis was down (one sent just before the restart may be
    # checked: the router's retry can reach the new server).
    down = [a for a in load.answers if a.phase == "down" and a.answered == "down"]
    assert len(down) >= PER_PHASE
    assert not any(a.checked for a in down)
    if failure == "fail_open":
        assert {a.status for a in load.answers} == {200}
    else:
        assert {a.status for a in load.answers} == {200, 503}
        assert {a.status for a in down} == {503}
    for answer in load.answers:
        if answer.status == 503:
            error = orjson.loads(answer.body)["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["code"] == "limits_unavailable"
        else:
            assert orjson.loads(answer.body)["object"] == "chat.completion"


def _assert_counted(metrics: Any, load: Load, failure: str) -> None:
    unchecked = sum(1 for a in load.answers if not a.checked)
    decided = f"switchyard_rate_limit_{failure}_total"
    assert metrics.sum(decided) == unchecked  # each decision counted once
    assert metrics.sum(decided, reason="connection") > 0  # a killed Redis refuses connections
    assert metrics.sum(decided, reason="error") == 0
    failed_admits = metrics.sum("switchyard_redis_errors_total", operation="admit")
    assert failed_admits == unchecked


def _script_loaded(server: RedisServer) -> bool:
    client = redis.Redis.from_url(server.url)
    try:
        sha = client.script_load(_script("admit.lua"))  # the same text gives the same sha
        return bool(client.script_exists(sha)[0]) and client.dbsize() > 0
    finally:
        client.close()
