"""/v1/realtime: failover and fallbacks before the upgrade, and the key's limits on sessions."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
import websockets.asyncio.client

from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.realtime_client import converse, realtime_url, sdk, upgrade_headers
from tests.functional.scrape import scrape
from tests.functional.test_failover import closed_port_url

METERED = "sk-test-realtime-metered-0123456789"


def _down() -> dict[str, Any]:
    return {"name": "down", "url": closed_port_url(), "api_key": "x"}


def _metered(fake: Fake, limits: dict[str, int]) -> dict[str, Any]:
    config = make_config({"gpt-4o": {"backends": [backend(fake, UPSTREAM_KEY_A)]}})
    config["keys"].append({"name": "metered", "key": METERED, "limits": limits})
    return config


async def test_failover_when_a_backend_is_down(start_router: RouterFactory, fake_b: Fake) -> None:
    pool = {"strategy": "round-robin", "backends": [_down(), backend(fake_b, UPSTREAM_KEY_B)]}
    router = start_router(make_config({"gpt-4o": pool}))
    async with sdk(router) as client:
        for _ in range(4):
            async with client.realtime.connect(model="gpt-4o") as connection:
                exchange = await converse(connection, "Hello")
                assert exchange.text == "fake-b says: Hello"
    lines = router.wait_access(4)
    assert {line["backend"] for line in lines} == {"fake-b"}
    # After three consecutive failures the dead backend is ejected: no more attempts on it.
    assert sum(line["attempts"] - 1 for line in lines) == 3


async def test_failover_when_the_upgrade_is_refused(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    pool = {"backends": [backend(fake_a, UPSTREAM_KEY_A), backend(fake_b, UPSTREAM_KEY_B)]}
    router = start_router(make_config({"gpt-4o": {**pool, "strategy": "round-robin"}}))
    fake_a.fail_next({"status": 503})
    async with sdk(router) as client:
        for _ in range(2):  # round-robin: one of the two sessions meets the refusal first
            async with client.realtime.connect(model="gpt-4o") as connection:
                exchange = await converse(connection, "Hi")
                assert exchange.text.endswith("says: Hi")
    assert sorted(line["attempts"] for line in router.wait_access(2)) == [1, 2]
    assert len(fake_a.requests()) + len(fake_b.requests()) == 3
    # The same forwarder as HTTP: the retry is counted, with its reason.
    metrics = scrape(f"{router.url}/metrics")
    assert metrics.sum("switchyard_retries_total", model="gpt-4o", reason="status_5xx") == 1


def test_no_backend_answers_502_before_upgrade(start_router: RouterFactory) -> None:
    router = start_router(make_config({"gpt-4o": {"backends": [_down()]}}))
    headers = upgrade_headers(Authorization=f"Bearer {CLIENT_KEY}")
    response = httpx.get(realtime_url(router), headers=headers)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert error["message"] == "Could not connect to backend down."


def test_a_refusal_about_the_request_is_not_retried(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    pool = {"backends": [backend(fake_a, UPSTREAM_KEY_A), backend(fake_b, UPSTREAM_KEY_B)]}
    router = start_router(make_config({"gpt-4o": pool}))
    fake_a.fail_next({"status": 404})
    fake_b.fail_next({"status": 404})
    headers = upgrade_headers(Authorization=f"Bearer {CLIENT_KEY}")
    response = httpx.get(realtime_url(router), headers=headers)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_refused"
    assert len(fake_a.requests()) + len(fake_b.requests()) == 1


async def test_an_open_session_holds_a_concurrency_slot(
    start_router: RouterFactory, fake_a: Fake
) -> None:
    router = start_router(_metered(fake_a, {"concurrency": 1}))
    headers = {"Authorization": f"Bearer {METERED}"}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(realtime_url(router), headers=headers) as ws:
            assert ws.protocol is None
            second = await http.get(realtime_url(router), headers=upgrade_headers(**headers))
            assert second.status == 429
            error = (await second.json())["error"]
            assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
            assert "concurrent" in error["message"]
            assert second.headers["retry-after"] == "1"
        router.wait_access(2)  # the first session's line is written after its slot is back
        async with http.ws_connect(realtime_url(router), headers=headers) as ws:
            assert (await ws.receive()).type is aiohttp.WSMsgType.TEXT


@pytest.mark.parametrize("api", ["ga", "beta"])
async def test_response_tokens_settle_against_tpm(
    start_router: RouterFactory, fake_a: Fake, api: str
) -> None:
    router = start_router(_metered(fake_a, {"tpm": 5}))
    async with sdk(router, key=METERED) as client:
        realtime = client.realtime if api == "ga" else client.beta.realtime
        async with realtime.connect(model="gpt-4o") as connection:
            exchange = await converse(connection, "Hello there")
        assert exchange.total_tokens == 6  # one more than the key's minute holds
    (line,) = router.wait_access(1)
    assert line["tokens"] == 6
    # The bucket is in debt: the next session waits until the minute has refilled it.
    headers = upgrade_headers(Authorization=f"Bearer {METERED}")
    async with httpx.AsyncClient() as http:
        refused = await http.get(realtime_url(router), headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_azure_backend(start_router: RouterFactory, fake_a: Fake) -> None:
    azure = {
        "name": "azure",
        "provider": "azure",
        "url": fake_a.url,
        "api_key": UPSTREAM_KEY_A,
        "deployment": "rt-deploy",
        "api_version": "2025-04-01-preview",
    }
    router = start_router(make_config({"gpt-4o": {"backends": [azure]}}))
    async with sdk(router) as client, client.realtime.connect(model="gpt-4o") as connection:
        exchange = await converse(connection, "Hello Azure")
    assert exchange.text == "fake-a says: Hello Azure"
    (request,) = fake_a.requests()
    assert request["path"] == "/openai/realtime"
    assert request["query"] == {"api-version": "2025-04-01-preview", "deployment": "rt-deploy"}
    assert request["headers"]["api-key"] == UPSTREAM_KEY_A
    assert "authorization" not in request["headers"]


async def test_fallback_model_serves_when_the_pool_is_down(
    start_router: RouterFactory, fake_b: Fake
) -> None:
    models = {
        "gpt-4o": {"fallbacks": ["gpt-4o-mini"], "backends": [_down()]},
        "gpt-4o-mini": {"backends": [backend(fake_b, UPSTREAM_KEY_B)]},
    }
    router = start_router(make_config(models))
    async with sdk(router) as client, client.realtime.connect(model="gpt-4o") as connection:
        assert (await converse(connection, "Hi")).text == "fake-b says: Hi"
    (request,) = fake_b.requests()
    assert request["query"] == {"model": "gpt-4o-mini"}
    (line,) = router.wait_access(1)
    assert (line["model"], line["served_model"], line["attempts"]) == ("gpt-4o", "gpt-4o-mini", 2)
    fallbacks = scrape(f"{router.url}/metrics").sum("switchyard_fallbacks_total", model="gpt-4o")
    assert fallbacks == 1


async def test_a_client_that_vanishes_frees_its_session(
    start_router: RouterFactory, fake_a: Fake
) -> None:
    router = start_router(_metered(fake_a, {"concurrency": 1}))
    url = realtime_url(router).replace("http://", "ws://")
    headers = {"Authorization": f"Bearer {METERED}"}
    async with websockets.asyncio.client.connect(url, additional_headers=headers) as ws:
        assert orjson.loads(await ws.recv())["type"] == "session.created"
        ws.transport.abort()  # no close frame, no FIN: the connection just breaks
    (session,) = await asyncio.to_thread(fake_a.sessions, ended=1, timeout=1.0)
    assert (session["close_code"], session["close_reason"]) == (1001, "The client went away.")
    (line,) = await asyncio.to_thread(router.wait_access, 1)
    assert line["ended"] == "client_close"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as again:
        assert (await again.receive()).type is aiohttp.WSMsgType.TEXT  # the slot came back
