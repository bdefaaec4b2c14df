"""Shared fixtures: fake upstreams and routers as real processes on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.auth.keyformat import parse_key
from tests.functional.fake_process import fake_upstream
from tests.functional.router_process import RouterProcess, router_process
from tests.redis_server import RedisServer

CLIENT_KEY = "sk-test-client-key-0123456789"
LIMITED_KEY = "sk-test-limited-key-0123456789"
UPSTREAM_KEY_A = "upstream-secret-key-aaaa"
UPSTREAM_KEY_B = "upstream-secret-key-bbbb"


def secret_part(key: str) -> str:
    """The secret of an ``sk-sy-<id>-<secret>`` key (the id is public; the secret may hold
    dashes itself, so it is never a split on the last one)."""
    parsed = parse_key(key)
    assert parsed is not None, "not a router key"
    return parsed[1]


class Fake:
    """A running fake upstream and its control API."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def reset(self) -> None:
        """No faults, nothing recorded; the account back to no quota, no prefix cache, an empty
        store and zero usage and refusal counters."""
        for path in (
            "/_fake/faults",
            "/_fake/requests",
            "/_fake/realtime",
            "/_fake/quota",
            "/_fake/prefix_cache",
            "/_fake/store",
            "/_fake/stats",
        ):
            self.http.delete(path).raise_for_status()

    def fail_next(self, *faults: dict[str, Any]) -> None:
        self.http.post("/_fake/faults", json={"next": list(faults)}).raise_for_status()

    def fail_always(self, fault: dict[str, Any]) -> None:
        self.http.post("/_fake/faults", json={"always": fault}).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        response = self.http.get("/_fake/requests")
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def wait_cancelled(self, count: int, timeout: float) -> bool:
        response = self.http.get(
            "/_fake/wait", params={"cancelled": count, "timeout": timeout}, timeout=timeout + 5
        )
        return response.status_code == 200

    def sessions(self, ended: int = 0, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Realtime sessions the fake saw, once at least ``ended`` of them have ended."""
        params = {"ended": ended, "timeout": timeout} if ended else {}
        response = self.http.get("/_fake/realtime", params=params, timeout=timeout + 5)
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def stats(self) -> dict[str, int]:
        """Counters: requests, inflight, cancelled, refused_429 (refused_requests,
        refused_tokens), prompt_tokens, cached_tokens, completion_tokens, stored_responses,
        conversations."""
        data: dict[str, int] = self.http.get("/_fake/stats").json()
        return data

    def set_quota(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        headers: str = "openai",
        window: float = 60.0,
    ) -> dict[str, Any]:
        """Play an account with this quota from now on (full buckets of ``window`` seconds'
        worth); see its module."""
        body = {"rpm": rpm, "tpm": tpm, "headers": headers, "window": window}
        response = self.http.post("/_fake/quota", json=body)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def quota(self) -> dict[str, Any]:
        """rpm, tpm, headers, remaining_requests, remaining_tokens (nulls when off)."""
        data: dict[str, Any] = self.http.get("/_fake/quota").json()
        return data

    def set_prefix_cache(
        self, blocks: int, min_tokens: int | None = None, block_tokens: int | None = None
    ) -> None:
        """A fresh prefix cache of ``blocks`` blocks (0: off); defaults are OpenAI's 1024/128."""
        body = {"blocks": blocks, "min_tokens": min_tokens, "block_tokens": block_tokens}
        self.http.post("/_fake/prefix_cache", json=body).raise_for_status()

    def set_background_seconds(self, seconds: float) -> None:
        """How long a ``background: true`` response takes to complete, from now on."""
        self.http.post("/_fake/store", json={"background_seconds": seconds}).raise_for_status()


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of the module's own (never the shared one); tests flush what they use."""
    with RedisServer() as running:
        yield running


@pytest.fixture(scope="session")
def fakes() -> Iterator[tuple[Fake, Fake]]:
    with ExitStack() as stack:
        a = stack.enter_context(fake_upstream("fake-a", api_key=UPSTREAM_KEY_A))
        b = stack.enter_context(fake_upstream("fake-b", api_key=UPSTREAM_KEY_B))
        pair = Fake("fake-a", a), Fake("fake-b", b)
        for fake in pair:
            stack.callback(fake.http.close)
        yield pair


@pytest.fixture
def fake_a(fakes: tuple[Fake, Fake]) -> Fake:
    fakes[0].reset()
    fakes[1].reset()
    return fakes[0]


@pytest.fixture
def fake_b(fakes: tuple[Fake, Fake], fake_a: Fake) -> Fake:
    return fakes[1]


def backend(fake: Fake, key: str, **extra: Any) -> dict[str, Any]:
    return {"name": fake.name, "url": fake.v1, "api_key": key, **extra}


def make_config(models: dict[str, Any], **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "drain_seconds": 10},
        "keys": [
            {"name": "test", "key": CLIENT_KEY, "models": ["*"]},
            {"name": "limited", "key": LIMITED_KEY, "models": ["gpt-4o-mini*"]},
        ],
        "retry": {"attempts": 3, "backoff_initial": 0.001, "backoff_max": 0.01},
        "models": models,
    }
    for name, value in sections.items():
        config[name] = {**config.get(name, {}), **value}
    return config


def two_backend_models(a: Fake, b: Fake, strategy: str = "round-robin") -> dict[str, Any]:
    pool = {
        "strategy": strategy,
        "backends": [backend(a, UPSTREAM_KEY_A), backend(b, UPSTREAM_KEY_B)],
    }
    return {
        "gpt-4o": pool,
        "gpt-4o-mini": {**pool, "strategy": "least-latency"},
        "text-embedding-3-small": pool,
    }


RouterFactory = Callable[..., RouterProcess]


@pytest.fixture
def start_router(tmp_path: Path) -> Iterator[RouterFactory]:
    """Start a router on a config of the test's own; stopped at the end of the test."""
    with ExitStack() as stack:
        count = 0

        def start(config: dict[str, Any], *extra_args: str) -> RouterProcess:
            nonlocal count
            count += 1
            directory = tmp_path / f"router{count}"
            directory.mkdir()
            return stack.enter_context(router_process(config, directory, extra_args=extra_args))

        yield start


@pytest.fixture
def router(start_router: RouterFactory, fake_a: Fake, fake_b: Fake) -> RouterProcess:
    """A router over both fakes (round-robin), fresh per test so health never leaks."""
    return start_router(make_config(two_backend_models(fake_a, fake_b)))


@pytest.fixture
def client(router: RouterProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def aclient(router: RouterProcess) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0
    ) as sdk:
        yield sdk
