"""Every client-visible error: OpenAI's JSON shape, the right status, no secret in it."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.router_process import RouterProcess

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    for secret in (CLIENT_KEY, UPSTREAM_KEY_A, UPSTREAM_KEY_B):
        assert secret not in response.text
    error: dict[str, Any] = body["error"]
    return error


def post(
    router: RouterProcess,
    body: Any,
    headers: dict[str, str] | None = None,
    path: str = "/chat/completions",
) -> httpx.Response:
    content = body if isinstance(body, bytes) else None
    return httpx.post(
        router.base_url + path,
        content=content,
        json=None if content is not None else body,
        headers=AUTH if headers is None else headers,
        timeout=30,
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk-not-a-key-at-all"}, {"Authorization": f"Basic {CLIENT_KEY}"}],
)
def test_401_missing_or_unknown_key(router: RouterProcess, headers: dict[str, str]) -> None:
    response = post(router, {"model": "gpt-4o", "messages": HELLO}, headers)
    assert response.status_code == 401
    assert _error(response)["code"] == "invalid_api_key"
    assert "sk-not-a-key" not in response.text


def test_401_with_the_sdk(router: RouterProcess) -> None:
    with (
        openai.OpenAI(base_url=router.base_url, api_key="sk-wrong-key", max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError),
    ):
        sdk.models.list()


def test_404_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-5-imaginary", messages=HELLO)
    assert caught.value.code == "model_not_found"
    assert "The model `gpt-5-imaginary` does not exist" in caught.value.message


def test_400_endpoint_the_model_does_not_serve(start_router: RouterFactory, fake_a: Fake) -> None:
    models = {
        "text-embedding-3-small": {
            "backends": [backend(fake_a, UPSTREAM_KEY_A, endpoints=["embeddings"])]
        }
    }
    router = start_router(make_config(models))
    response = post(router, {"model": "text-embedding-3-small", "messages": HELLO})
    assert response.status_code == 400
    assert _error(response)["param"] == "model"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"", None),
        ({"messages": HELLO}, "model"),
        ({"model": 42, "messages": HELLO}, "model"),
        ({"model": "gpt-4o", "messages": HELLO, "stream": "yes"}, "stream"),
    ],
)
def test_400_bad_body(router: RouterProcess, body: Any, param: str | None) -> None:
    response = post(router, body)
    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_413_over_max_body_bytes(start_router: RouterFactory, fake_a: Fake) -> None:
    config = make_config(
        {"gpt-4o": {"backends": [backend(fake_a, UPSTREAM_KEY_A)]}}, server={"max_body_bytes": 1000}
    )
    router = start_router(config)
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 2000}]}
    response = post(router, big)
    assert response.status_code == 413
    _error(response)
    assert fake_a.requests() == []
    # Without a Content-Length (chunked upload) the limit holds too.
    chunked = httpx.post(
        router.base_url + "/chat/completions",
        headers=AUTH,
        content=iter([b'{"model": "gpt-4o", "x": "', b"y" * 2000, b'"}']),
    )
    assert chunked.status_code == 413
    _error(chunked)


def test_404_and_405_routes_are_openai_json(router: RouterProcess) -> None:
    response = httpx.get(router.base_url + "/nothing-here", headers=AUTH)
    assert response.status_code == 404
    _error(response)
    response = httpx.get(router.base_url + "/chat/completions", headers=AUTH)
    assert response.status_code == 405
    _error(response)


def test_502_when_every_backend_fails(router: RouterProcess, fake_a: Fake, fake_b: Fake) -> None:
    fake_a.fail_always({"status": 500})
    fake_b.fail_always({"status": 500})
    response = post(router, {"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 502
    error = _error(response)
    assert "answered with status 500" in error["message"]


def test_502_when_the_upstream_refuses_our_credential(
    start_router: RouterFactory, fake_a: Fake
) -> None:
    models = {"gpt-4o": {"backends": [backend(fake_a, "upstream-secret-but-wrong")]}}
    router = start_router(make_config(models))
    response = post(router, {"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 502
    assert "refused the router's credentials" in _error(response)["message"]
    assert "upstream-secret-but-wrong" not in response.text


def test_429_with_retry_after_when_all_backends_are_rate_limited(
    router: RouterProcess, fake_a: Fake, fake_b: Fake
) -> None:
    """Every account refusing is a busy pool, not an outage: 429, as the SDKs back off on."""
    fake_a.fail_always({"retry_after": 7})
    fake_b.fail_always({"retry_after": 7})
    response = post(router, {"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 429
    error = _error(response)
    assert (error["code"], error["type"]) == ("rate_limit_exceeded", "requests")
    assert response.headers["retry-after"] == "7"


def test_504_when_the_first_byte_is_late(start_router: RouterFactory, fake_a: Fake) -> None:
    slow = backend(fake_a, UPSTREAM_KEY_A, timeouts={"first_byte": 0.3, "idle": 0.3})
    router = start_router(make_config({"gpt-4o": {"backends": [slow]}}))
    fake_a.fail_always({"delay_first_byte": 3})
    response = post(router, {"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 504
    assert "did not answer in time" in _error(response)["message"]


def test_upstream_client_errors_are_relayed_as_sent(
    router: RouterProcess, fake_a: Fake, fake_b: Fake
) -> None:
    """A 400 about the request itself is the upstream's answer: relayed, not retried."""
    fake_a.fail_always({"status": 400})
    fake_b.fail_always({"status": 400})
    response = post(router, {"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 400
    _error(response)
    assert len(fake_a.requests()) + len(fake_b.requests()) == 1
