"""The backend's credentials never reach the client, whatever the upstream echoes.

The fake's ``echo_key`` fault quotes every credential the router sent it (``Authorization``,
``*-key`` and ``*-token`` headers) in its error message, as real upstreams do ("Incorrect API
key provided: sk-..."). The client must still read the upstream's message, with each
credential replaced by ``[redacted]``.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_A,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.realtime_client import realtime_url
from tests.functional.router_process import RouterProcess
from tests.reliability.scan import assert_clean

API_KEY_HEADER = "xk-7Qf2Lr9Zt4Wm8Kp3Vn6Hb1Jd"  # x-api-key: secret by its name
ORG_TOKEN = "ot-Y5s8Gx2Nc7Rv4Tq9Pz1Mw6Ea"  # X-Org-Token: secret because it is marked
SECRETS = (UPSTREAM_KEY_A, API_KEY_HEADER, ORG_TOKEN, CLIENT_KEY)
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]


def _router(start_router: RouterFactory, fake: Fake) -> RouterProcess:
    headers = {"x-api-key": API_KEY_HEADER, "X-Org-Token": ORG_TOKEN}
    one = backend(fake, UPSTREAM_KEY_A, headers=headers, secret_headers=["x-org-token"])
    pool = {"backends": [one]}
    models = {"gpt-4o": pool, "text-embedding-3-small": pool}
    return start_router(make_config(models, retry={"attempts": 1}))


def _post(router: RouterProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    return httpx.post(f"{router.base_url}/{path}", json=body, headers=headers, timeout=30)


BODIES: dict[str, dict[str, Any]] = {
    "chat/completions": {"model": "gpt-4o", "messages": HELLO},
    "embeddings": {"model": "text-embedding-3-small", "input": "Hello"},
    "responses": {"model": "gpt-4o", "input": "Hello"},
}


@pytest.mark.parametrize("status", [400, 404, 409, 422])
@pytest.mark.parametrize("path", list(BODIES))
def test_error_bodies_keep_the_message_without_the_credentials(
    start_router: RouterFactory, fake_a: Fake, status: int, path: str
) -> None:
    router = _router(start_router, fake_a)
    fake_a.fail_always({"status": status, "echo_key": True})
    response = _post(router, path, BODIES[path])
    assert response.status_code == status
    error = response.json()["error"]  # still OpenAI's JSON, Content-Length right
    assert int(response.headers["content-length"]) == len(response.content)
    message = error["message"]
    assert message.startswith(("Invalid request", "The requested", "Scripted fault"))
    # Three credentials went upstream (Authorization's key, x-api-key, X-Org-Token): all hidden.
    assert message.count("[redacted]") == 3, message
    assert_clean([response.text, *router.lines], SECRETS)


def test_a_refused_credential_is_never_quoted(start_router: RouterFactory, fake_a: Fake) -> None:
    router = _router(start_router, fake_a)
    fake_a.fail_always({"status": 401, "echo_key": True})
    response = _post(router, "chat/completions", BODIES["chat/completions"])
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "Backend fake-a refused the router's credentials."
    assert_clean([response.text, *router.lines], SECRETS)


@pytest.mark.parametrize("path", ["chat/completions", "responses"])
def test_a_stream_error_event_is_scrubbed(
    start_router: RouterFactory, fake_a: Fake, path: str
) -> None:
    router = _router(start_router, fake_a)
    fake_a.fail_always({"error_after": 2, "echo_key": True})
    response = _post(router, path, {**BODIES[path], "stream": True})
    assert response.status_code == 200
    events = [event for event in response.text.split("\n\n") if event.startswith("event: error")]
    # The upstream's error event (scrubbed), then the router's own: the stream had no end.
    assert len(events) == 2, response.text
    upstream = orjson.loads(events[0].split("data: ", 1)[1])
    assert upstream["error"]["message"].count("[redacted]") == 3
    assert_clean([response.text, *router.lines], SECRETS)


def test_the_sdk_raises_the_scrubbed_message(start_router: RouterFactory, fake_a: Fake) -> None:
    router = _router(start_router, fake_a)
    fake_a.fail_always({"error_after": 3, "echo_key": True})
    with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        stream = client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
        with pytest.raises(openai.APIError) as caught:
            list(stream)
    assert "Credentials received: " in caught.value.message
    assert "[redacted]" in caught.value.message
    assert_clean([caught.value.message, str(caught.value.body)], SECRETS)


async def test_a_realtime_error_event_is_scrubbed(
    start_router: RouterFactory, fake_a: Fake
) -> None:
    router = _router(start_router, fake_a)
    fake_a.fail_next({"echo_key": True})
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(realtime_url(router), headers=headers) as ws,
    ):
        created = await ws.receive_json(timeout=10)
        error = await ws.receive_json(timeout=10)
    assert (created["type"], error["type"]) == ("session.created", "error")
    assert error["error"]["message"].count("[redacted]") == 3
    assert_clean([orjson.dumps(error).decode()], SECRETS)
