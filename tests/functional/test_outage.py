"""Every backend of a pool down: the cooldown keeps traffic off them, and readiness stays up."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_B,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.router_process import RouterProcess
from tests.functional.scrape import scrape
from tests.functional.test_failover import closed_port_url

HELLO = [{"role": "user", "content": "Hello"}]
COOLDOWN = 60.0  # longer than the test: no probe is due while it runs


def _dead(name: str) -> dict[str, Any]:
    return {"name": name, "url": closed_port_url(), "api_key": f"dead-key-{name}"}


def _post(router: RouterProcess, model: str = "gpt-4o") -> httpx.Response:
    body = {"model": model, "messages": HELLO}
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    return httpx.post(f"{router.base_url}/chat/completions", json=body, headers=headers)


def test_a_dead_pool_answers_no_backend_without_trying(start_router: RouterFactory) -> None:
    pool = {"strategy": "round-robin", "backends": [_dead("d1"), _dead("d2")]}
    health = {"cooldown": COOLDOWN, "max_cooldown": 600}
    router = start_router(make_config({"gpt-4o": pool}, health=health))
    statuses = [_post(router) for _ in range(30)]
    # Three requests meet the dead backends (each tries both: 3 failures eject each one) ...
    assert [r.status_code for r in statuses[:3]] == [502] * 3
    # ... then nothing goes near them until a cooldown ends: 503 no_backend, at once.
    for response in statuses[3:]:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "no_backend"
        assert 1 <= int(response.headers["retry-after"]) <= COOLDOWN
    lines = router.wait_access(30)
    assert sum(line["attempts"] for line in lines) == 6
    metrics = scrape(f"{router.url}/metrics")
    assert metrics.sum("switchyard_backend_transitions_total", transition="ejection") == 2
    assert metrics.sum("switchyard_backend_transitions_total", transition="probe") == 0


def test_readiness_does_not_follow_the_backends(start_router: RouterFactory) -> None:
    """Every replica sees the same upstreams: failing readiness would take the whole fleet out
    of its load balancer, and clients would lose even the quick, honest 503."""
    pool = {"backends": [_dead("d1")]}
    router = start_router(make_config({"gpt-4o": pool}, health={"cooldown": COOLDOWN}))
    for _ in range(3):
        assert _post(router).status_code == 502
    assert _post(router).json()["error"]["code"] == "no_backend"
    ready = httpx.get(f"{router.url}/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert all("[0 healthy, 1 ejected" in pool for pool in body["pools"]), body  # but shown


def test_fallbacks_apply_before_no_backend(start_router: RouterFactory, fake_b: Fake) -> None:
    models = {
        "gpt-4o": {"backends": [_dead("d1")], "fallbacks": ["gpt-4o-mini"]},
        "gpt-4o-mini": {"backends": [backend(fake_b, UPSTREAM_KEY_B)]},
    }
    router = start_router(make_config(models, health={"cooldown": COOLDOWN}))
    started = time.monotonic()
    for _ in range(20):
        response = _post(router)
        assert response.status_code == 200
        assert response.headers["x-switchyard-backend"] == "fake-b"
    lines = router.wait_access(20)
    # The dead backend is tried until it is ejected (3 failures), never after.
    assert [line["attempts"] for line in lines] == [2, 2, 2] + [1] * 17
    assert time.monotonic() - started < 30


def test_falling_back_from_a_dead_pool_spends_no_retry(
    start_router: RouterFactory, fake_b: Fake
) -> None:
    """A pool with no backend to try sent nothing upstream: its fallback is no retry, so an
    exhausted retry budget (here: none at all) does not refuse it."""
    models = {
        "gpt-4o": {"backends": [_dead("d1")], "fallbacks": ["gpt-4o-mini"]},
        "gpt-4o-mini": {"backends": [backend(fake_b, UPSTREAM_KEY_B)]},
    }
    no_retries = {"budget_percent": 0, "budget_min_per_second": 0}
    router = start_router(make_config(models, health={"cooldown": COOLDOWN}, retry=no_retries))
    # No budget: the failures that eject d1 get no retry and no fallback.
    assert [_post(router).status_code for _ in range(3)] == [502] * 3
    for _ in range(10):
        response = _post(router)
        assert response.status_code == 200
        assert response.headers["x-switchyard-backend"] == "fake-b"
    metrics = scrape(f"{router.url}/metrics")
    fallbacks = metrics.sum("switchyard_fallbacks_total", model="gpt-4o", reason="no_backend")
    assert fallbacks == 10
