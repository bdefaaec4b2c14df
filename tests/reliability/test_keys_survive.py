"""API keys survive a Redis that restarts empty (issue 10, broken promise 2).

Real processes: a private ``redis-server`` without persistence (stopped and started again on
the same port, empty, as the shipped compose file used to run it) and routers as subprocesses.
Keys are made through the admin API, one rotated and one revoked; after the reset every live
key must open every router again (running ones, a new one, one restarted from its snapshot
file), the revoked key must never, and exactly one router restores.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.auth.keyformat import parse_key
from tests.functional.router_process import RouterProcess, router_process
from tests.functional.scrape import scrape
from tests.redis_server import RedisServer
from tests.reliability.scan import assert_clean

ADMIN_KEY = "admin-key-for-the-reliability-suite"
BOUND = 15.0  # seconds for every key to work again after the reset: generous on a busy host
RESTORES = "switchyard_keystore_restores_total"
RESET_LINE = "key store was reset"


def config(redis_url: str) -> dict[str, Any]:
    # No request goes upstream: /v1/models answers from the config, after authentication.
    backend = {"name": "unused", "url": "http://127.0.0.1:9/v1", "api_key": "upstream-unused-key"}
    return {
        "server": {"host": "127.0.0.1", "port": 0, "drain_seconds": 1},
        "admin": {"key": ADMIN_KEY},
        "redis": {"url": redis_url},
        "models": {"gpt-4o": {"backends": [backend]}},
    }


@dataclass
class Keys:
    """The keys in play and what the tests saw: bodies, for the secret scan."""

    live: dict[str, str] = field(default_factory=dict)  # full key -> id
    dead: dict[str, str] = field(default_factory=dict)  # revoked, or rotated without grace
    bodies: list[str] = field(default_factory=list)

    @property
    def secrets(self) -> list[str]:
        # The secret part of each key: its id (the 12 characters after sk-sy-) is public.
        parts = [parse_key(key) for key in [*self.live, *self.dead]]
        return [ADMIN_KEY, "upstream-unused-key", *(part[1] for part in parts if part)]

    def admin(self, router: RouterProcess, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        response = httpx.request(method, router.url + path, headers=headers, timeout=10, **kw)
        assert response.status_code in (200, 201), response.text
        data = response.json()
        if "key" not in data:  # not the one answer that shows a new secret, by design
            self.bodies.append(response.text)
        return data

    def status(self, router: RouterProcess, key: str) -> int:
        headers = {"Authorization": f"Bearer {key}"}
        response = httpx.get(router.base_url + "/models", headers=headers, timeout=10)
        self.bodies.append(response.text)
        return response.status_code

    def make(self, router: RouterProcess) -> None:
        """Four keys: one plain, one rotated with a grace, one rotated without, one revoked."""
        made = [self.admin(router, "POST", "/admin/keys", json={"name": n}) for n in "abcd"]
        for created in made:
            self.live[created["key"]] = created["id"]
        for created, grace in ((made[1], 3600), (made[2], 0)):
            path = f"/admin/keys/{created['id']}/rotate"
            rotated = self.admin(router, "POST", path, json={"grace_seconds": grace})
            self.live[rotated["key"]] = rotated["id"]
            if grace == 0:
                self.dead[self.live.pop(created["key"])] = created["id"]
        self.admin(router, "DELETE", f"/admin/keys/{made[3]['id']}")
        self.dead[made[3]["key"]] = self.live.pop(made[3]["key"])

    def all_work(self, router: RouterProcess) -> bool:
        """Every live key opens ``router``; a dead key never does (checked on every call)."""
        for key in self.dead:
            assert self.status(router, key) == 401, "a revoked or expired secret came back"
        return all(self.status(router, key) == 200 for key in self.live)

    def listed(self, router: RouterProcess) -> dict[str, str]:
        data = self.admin(router, "GET", "/admin/keys")["data"]
        return {key["id"]: key["state"] for key in data}

    def expected_list(self) -> dict[str, str]:
        states = dict.fromkeys(self.live.values(), "active")
        revoked = set(self.dead.values()) - set(states)  # a rotated id stays active
        return {**states, **dict.fromkeys(revoked, "revoked")}


def within(check: Callable[[], bool], seconds: float = BOUND) -> float:
    """Poll ``check`` until it holds; how long it took (fails past ``seconds``)."""
    start = time.monotonic()
    while not check():
        elapsed = time.monotonic() - start
        assert elapsed < seconds, f"not true after {elapsed:.1f} s"
        time.sleep(0.05)  # polling with a deadline, not a wait standing in for an event
    return time.monotonic() - start


def reset(redis: RedisServer) -> None:
    """Redis restarts with nothing: no RDB, no AOF."""
    redis.stop()
    redis.start()


def error_lines(*routers: RouterProcess) -> list[dict[str, Any]]:
    return [
        r
        for router in routers
        for r in router.records()
        if r.get("level") == "error" and RESET_LINE in r.get("msg", "")
    ]


def check_clean(keys: Keys, routers: list[RouterProcess], metrics: list[str]) -> None:
    lines = [line for router in routers for line in router.lines]
    assert_clean([*lines, *keys.bodies, *metrics], keys.secrets)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def routers(tmp_path: Path) -> Iterator[Callable[[str, str], RouterProcess]]:
    """Start a router in ``tmp_path / name`` (its own snapshot file); stopped at the end."""
    with ExitStack() as stack:

        def start(name: str, redis_url: str) -> RouterProcess:
            directory = tmp_path / name
            directory.mkdir(exist_ok=True)
            return stack.enter_context(router_process(config(redis_url), directory))

        yield start


def test_running_routers_restore_once_and_a_new_router_sees_every_key(
    redis: RedisServer, routers: Callable[[str, str], RouterProcess], tmp_path: Path
) -> None:
    a, b = routers("a", redis.url), routers("b", redis.url)
    keys = Keys()
    keys.make(a)
    # Both routers answer from the final version of every record (each read joins a router's
    # snapshot), so both hold it when Redis goes.
    within(lambda: keys.all_work(a) and keys.all_work(b))

    reset(redis)
    took = within(lambda: keys.all_work(a) and keys.all_work(b))
    assert keys.listed(a) == keys.listed(b) == keys.expected_list()

    c = routers("c", redis.url)  # a router started after the reset, with no snapshot
    within(lambda: keys.all_work(c))
    assert keys.listed(c) == keys.expected_list()

    readings = [scrape(f"{router.url}/metrics") for router in (a, b, c)]
    assert sum(reading.sum(RESTORES) for reading in readings) == 1
    assert len(error_lines(a, b, c)) == 1, error_lines(a, b, c)
    check_clean(keys, [a, b, c], [reading.text for reading in readings])
    print(f"every key worked again {took:.2f} s after Redis came back empty")


def test_a_router_restarted_with_redis_restores_from_its_snapshot_file(
    redis: RedisServer, routers: Callable[[str, str], RouterProcess], tmp_path: Path
) -> None:
    first = routers("a", redis.url)
    keys = Keys()
    keys.make(first)
    first.stop()  # a clean stop saves the snapshot file last of all
    reset(redis)

    again = routers("a", redis.url)  # the same directory: the same snapshot file
    within(lambda: keys.all_work(again))
    assert keys.listed(again) == keys.expected_list()
    snapshot = tmp_path / "a" / "keys-snapshot.json"
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    reading = scrape(f"{again.url}/metrics")
    assert reading.sum(RESTORES) == 1
    assert len(error_lines(first, again)) == 1
    check_clean(keys, [first, again], [reading.text])
