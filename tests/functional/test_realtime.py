"""/v1/realtime through the router: the SDK's GA and beta clients, browser-style subprotocol
auth, refusals before the upgrade, and closes relayed both ways."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import httpx
import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.functional.conftest import (
    CLIENT_KEY,
    LIMITED_KEY,
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.realtime_client import (
    KEY_PROTOCOL,
    browser_protocols,
    converse,
    realtime_url,
    receive_json,
    sdk,
    upgrade_headers,
)
from tests.functional.router_process import RouterProcess


def one_backend(
    start_router: RouterFactory, fake: Fake, key: str, **timeouts: float
) -> RouterProcess:
    extra = {"timeouts": timeouts} if timeouts else {}
    pool = {"backends": [backend(fake, key, **extra)]}
    return start_router(make_config({"gpt-4o": pool, "gpt-4o-mini": pool}))


async def test_ga_text_exchange(router: RouterProcess, fake_a: Fake, fake_b: Fake) -> None:
    async with sdk(router) as client, client.realtime.connect(model="gpt-4o") as connection:
        first = await connection.recv()
        assert first.type == "session.created"
        exchange = await converse(connection, "Hello there")
    name = exchange.text.split(" says: ")[0]
    assert name in ("fake-a", "fake-b")
    assert exchange.text == f"{name} says: Hello there"
    assert exchange.types[0] == "conversation.item.added"
    assert exchange.types[1] == "response.created"
    assert exchange.total_tokens == 2 + 4  # two words in, four out
    (line,) = router.wait_access(1)
    assert line["status"] == 101
    assert line["backend"] == name
    assert line["ended"] == line["outcome"] == "completed"
    assert line["realtime_api"] == "ga"
    # session.created, item added, response.created, four deltas, response.done
    assert (line["client_frames"], line["upstream_frames"]) == (2, 1 + 1 + 1 + 4 + 1)
    assert line["client_bytes"] > 0
    assert line["upstream_bytes"] > 0
    assert (line["responses"], line["tokens"]) == (1, 6)


async def test_beta_text_exchange(router: RouterProcess, fake_a: Fake, fake_b: Fake) -> None:
    async with sdk(router) as client, client.beta.realtime.connect(model="gpt-4o") as connection:
        assert (await connection.recv()).type == "session.created"
        exchange = await converse(connection, "Hi beta")
    assert exchange.text.endswith(" says: Hi beta")
    assert exchange.types[0] == "conversation.item.created"
    assert "response.text.delta" in exchange.types
    (request,) = [r for fake in (fake_a, fake_b) for r in fake.requests()]
    assert request["path"] == "/v1/realtime"
    assert request["headers"]["openai-beta"] == "realtime=v1"
    assert router.wait_access(1)[0]["realtime_api"] == "beta"


async def test_browser_subprotocol_auth_and_the_key_stays_here(
    router: RouterProcess, fake_a: Fake, fake_b: Fake
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(realtime_url(router), protocols=browser_protocols(beta=True)) as ws,
    ):
        assert ws.protocol == "realtime"  # never the key-bearing protocol
        assert (await receive_json(ws))["type"] == "session.created"
    (request,) = [r for fake in (fake_a, fake_b) for r in fake.requests()]
    upstream_key = UPSTREAM_KEY_A if request["headers"]["host"] in fake_a.url else UPSTREAM_KEY_B
    assert request["headers"]["authorization"] == f"Bearer {upstream_key}"
    assert request["headers"]["openai-beta"] == "realtime=v1"
    assert request["query"] == {"model": "gpt-4o"}
    assert CLIENT_KEY not in str(request)
    assert "sec-websocket-protocol" not in request["headers"]
    router.wait_access(1)
    logged = "".join(router.lines)
    for secret in (CLIENT_KEY, UPSTREAM_KEY_A, UPSTREAM_KEY_B):
        assert secret not in logged


async def test_bearer_key_is_replaced_upstream(start_router: RouterFactory, fake_a: Fake) -> None:
    router = one_backend(start_router, fake_a, UPSTREAM_KEY_A)
    async with sdk(router) as client, client.realtime.connect(model="gpt-4o") as connection:
        assert (await connection.recv()).type == "session.created"
    (request,) = fake_a.requests()
    assert request["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY_A}"
    assert "openai-beta" not in request["headers"]
    assert request["headers"]["x-client-request-id"].startswith("req_")
    assert CLIENT_KEY not in str(request)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Authorization": "Bearer sk-wrong-key-0123456789"}, "invalid_api_key"),
        ({"Sec-WebSocket-Protocol": f"realtime, {KEY_PROTOCOL}sk-wrong-key-012345"}, None),
        ({}, None),
    ],
    ids=["bad-bearer", "bad-subprotocol", "no-key"],
)
def test_bad_key_refused_before_upgrade(
    router: RouterProcess, fake_a: Fake, headers: dict[str, str], code: str | None
) -> None:
    response = httpx.get(realtime_url(router), headers=upgrade_headers(**headers))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert "sk-wrong" not in error["message"]
    assert "upgrade" not in response.headers
    assert fake_a.requests() == []


async def test_sdk_sees_the_refusal(router: RouterProcess) -> None:
    async with sdk(router, key="sk-wrong-key-0123456789") as client:
        with pytest.raises(InvalidStatus) as caught:
            async with client.realtime.connect(model="gpt-4o"):
                pass
    assert caught.value.response.status_code == 401
    assert b"invalid_api_key" in caught.value.response.body


@pytest.mark.parametrize(
    ("url", "key", "status", "code"),
    [
        ("/realtime?model=gpt-9", CLIENT_KEY, 404, "model_not_found"),
        ("/realtime?model=gpt-4o", LIMITED_KEY, 404, "model_not_found"),  # not on its list
        ("/realtime", CLIENT_KEY, 400, "missing_required_parameter"),
    ],
    ids=["unknown", "forbidden", "missing"],
)
def test_model_errors_before_upgrade(
    router: RouterProcess, url: str, key: str, status: int, code: str
) -> None:
    headers = upgrade_headers(Authorization=f"Bearer {key}")
    response = httpx.get(router.base_url + url, headers=headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"] == "model"


def test_not_a_websocket_and_unanswerable_protocols(router: RouterProcess) -> None:
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    plain = httpx.get(realtime_url(router), headers=auth)
    assert plain.status_code == 400
    assert plain.json()["error"]["code"] == "websocket_required"
    key_only = upgrade_headers(**{"Sec-WebSocket-Protocol": KEY_PROTOCOL + CLIENT_KEY})
    refused = httpx.get(realtime_url(router), headers=key_only)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsupported_subprotocol"
    assert CLIENT_KEY not in "".join(router.lines)


async def test_client_close_code_reaches_upstream(
    start_router: RouterFactory, fake_a: Fake
) -> None:
    router = one_backend(start_router, fake_a, UPSTREAM_KEY_A)
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(realtime_url(router), headers=headers)
        assert (await receive_json(ws))["type"] == "session.created"
        await ws.send_bytes(b"\x00binary\xff")
        echoed = await ws.receive()
        assert (echoed.type, echoed.data) == (aiohttp.WSMsgType.BINARY, b"\x00binary\xff")
        closing = time.monotonic()
        await ws.close(code=4000, message=b"bye now")
    (session,) = await asyncio.to_thread(fake_a.sessions, ended=1, timeout=1.0)
    assert time.monotonic() - closing < 1.0
    assert (session["ended"], session["close_code"], session["close_reason"]) == (
        "client_close",
        4000,
        "bye now",
    )
    assert session["binary_frames"] == 1
    (line,) = router.wait_access(1)
    assert (line["ended"], line["close_code"]) == ("client_close", 4000)


async def test_upstream_close_code_reaches_client(
    start_router: RouterFactory, fake_a: Fake
) -> None:
    router = one_backend(start_router, fake_a, UPSTREAM_KEY_A)
    fake_a.fail_next({"close_code": 4001, "close_reason": "upstream says bye"})
    async with sdk(router) as client, client.realtime.connect(model="gpt-4o") as connection:
        assert (await connection.recv()).type == "session.created"
        with pytest.raises(ConnectionClosedError) as caught:
            await connection.recv()
    assert caught.value.rcvd is not None
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (4001, "upstream says bye")
    (line,) = router.wait_access(1)
    assert (line["ended"], line["close_code"]) == ("upstream_close", 4001)


async def test_upstream_drop_is_an_error_close(start_router: RouterFactory, fake_a: Fake) -> None:
    router = one_backend(start_router, fake_a, UPSTREAM_KEY_A)
    fake_a.fail_next({"cut_after": 3})  # session.created, item added, response.created, then cut
    async with sdk(router) as client, client.realtime.connect(model="gpt-4o") as connection:
        with pytest.raises(ConnectionClosedError) as caught:
            await converse(connection, "Hello")
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1011
    assert "fake-a dropped the connection" in caught.value.rcvd.reason
    (line,) = router.wait_access(1)
    assert (line["ended"], line["close_code"]) == ("upstream_error", 1011)


async def test_pings_are_answered(router: RouterProcess) -> None:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(realtime_url(router), headers=headers, autoping=False) as ws,
    ):
        await ws.ping(b"are you there")
        kinds = []
        while (msg := await ws.receive()).type is not aiohttp.WSMsgType.PONG:
            kinds.append(msg.type)
        assert msg.data == b"are you there"
        assert kinds in ([], [aiohttp.WSMsgType.TEXT])  # session.created may come first


async def test_idle_session_times_out(start_router: RouterFactory, fake_a: Fake) -> None:
    router = one_backend(start_router, fake_a, UPSTREAM_KEY_A, realtime_idle=0.3)
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(realtime_url(router), headers=headers) as ws,
    ):
        assert (await receive_json(ws))["type"] == "session.created"
        msg = await ws.receive()  # nothing sent: the router closes the session
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (1001, "Session idle for 0.3 s.")
    (session,) = await asyncio.to_thread(fake_a.sessions, ended=1)
    assert (session["close_code"], session["close_reason"]) == (1001, "Session idle for 0.3 s.")
    assert router.wait_access(1)[0]["ended"] == "idle_timeout"


async def test_shutdown_closes_open_sessions(start_router: RouterFactory, fake_a: Fake) -> None:
    router = one_backend(start_router, fake_a, UPSTREAM_KEY_A)
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(realtime_url(router), headers=headers) as ws,
    ):
        assert (await receive_json(ws))["type"] == "session.created"
        started = time.monotonic()
        stopping = asyncio.create_task(asyncio.to_thread(router.stop))
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 1001
        assert await stopping == 0
    assert time.monotonic() - started < 5  # not the drain's 10 s
    (session,) = await asyncio.to_thread(fake_a.sessions, ended=1)
    assert session["close_code"] == 1001
