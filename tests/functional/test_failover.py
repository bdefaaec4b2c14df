"""Retries, failover, ejection and fallbacks: only ever before the first byte."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.conftest import (
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.router_process import RouterProcess

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def sdk(router: RouterProcess) -> openai.OpenAI:
    from tests.functional.conftest import CLIENT_KEY

    return openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0)


def test_failover_when_a_backend_is_down(start_router: RouterFactory, fake_b: Fake) -> None:
    down = {"name": "down", "url": closed_port_url(), "api_key": "x"}
    pool = {"strategy": "round-robin", "backends": [down, backend(fake_b, UPSTREAM_KEY_B)]}
    router = start_router(make_config({"gpt-4o": pool}))
    with sdk(router) as client:
        for _ in range(10):
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
            assert raw.headers["x-switchyard-backend"] == "fake-b"
    assert len(fake_b.requests()) == 10
    # After three consecutive failures the dead backend is ejected: no more attempts on it.
    attempts = [line["attempts"] for line in router.wait_access(10)]
    assert sum(a - 1 for a in attempts) == 3


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 500}, {"drop": True}])
def test_failover_on_5xx_and_429(
    router: RouterProcess, fake_a: Fake, fake_b: Fake, fault: dict[str, Any]
) -> None:
    fake_a.fail_next(fault)
    with sdk(router) as client:
        for _ in range(2):  # round-robin: one of the two requests meets the fault first
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
            assert raw.http_response.status_code == 200
    assert len(fake_a.requests()) == 2  # the failed try and one good answer
    assert len(fake_b.requests()) == 1  # the retry
    assert sorted(line["attempts"] for line in router.wait_access(2)) == [1, 2]


def test_429_fails_over_and_ejects_for_retry_after(
    router: RouterProcess, fake_a: Fake, fake_b: Fake
) -> None:
    fake_a.fail_next({"retry_after": 30})
    with sdk(router) as client:
        for _ in range(4):
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
            assert raw.http_response.status_code == 200
    # fake-a answered 429 once and is left alone for its retry-after; fake-b takes the rest.
    assert len(fake_a.requests()) == 1
    assert len(fake_b.requests()) == 4
    assert "1 ejected" in httpx.get(f"{router.url}/readyz").json()["pools"][0]


def test_ejected_backend_is_probed_back(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    pool = {
        "strategy": "round-robin",
        "backends": [backend(fake_a, UPSTREAM_KEY_A), backend(fake_b, UPSTREAM_KEY_B)],
    }
    config = make_config({"gpt-4o": pool}, health={"failures_to_eject": 1, "cooldown": 0.2})
    router = start_router(config)
    fake_a.fail_next({"status": 500})
    with sdk(router) as client:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # a fails, b answers
        fake_a.reset()
        fake_b.reset()
        # While ejected, fake-a gets nothing; once the cooldown ends a single probe heals it.
        seen: set[str] = set()
        deadline = time.monotonic() + 30  # past the cooldown however fast the requests go
        while time.monotonic() < deadline:
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
            seen.add(raw.headers["x-switchyard-backend"])
            if "fake-a" in seen:
                break
    assert seen == {"fake-a", "fake-b"}
    ready = httpx.get(f"{router.url}/readyz").json()
    assert "[2 healthy" in ready["pools"][0]


def test_no_retry_after_the_first_byte(router: RouterProcess, fake_a: Fake, fake_b: Fake) -> None:
    fake_a.fail_always({"cut_after": 2})
    fake_b.fail_always({"cut_after": 2})
    with sdk(router) as client:
        stream = client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
        received: list[object] = []
        with pytest.raises(openai.APIError) as caught:
            received.extend(stream)
    assert len(received) == 2
    assert "broke off the stream" in caught.value.message
    assert len(fake_a.requests()) + len(fake_b.requests()) == 1


def test_mid_stream_death_is_an_error_event_not_a_clean_end(
    router: RouterProcess, fake_a: Fake, fake_b: Fake
) -> None:
    from tests.functional.conftest import CLIENT_KEY

    fake_a.fail_always({"cut_after": 3})
    fake_b.fail_always({"cut_after": 3})
    body = {"model": "gpt-4o", "messages": HELLO, "stream": True}
    with httpx.stream(
        "POST",
        f"{router.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    ) as response:
        raw = b"".join(response.iter_bytes())
    assert b"[DONE]" not in raw
    assert raw.endswith(b"\n\n")
    last = raw.rstrip(b"\n").split(b"\n\n")[-1]
    assert last.startswith(b'event: error\ndata: {"error":')
    assert router.wait_access(1)[-1]["outcome"] == "upstream_error"


def test_idle_upstream_mid_stream_times_out_with_an_error(
    start_router: RouterFactory, fake_a: Fake
) -> None:
    slow = backend(fake_a, UPSTREAM_KEY_A, timeouts={"idle": 0.3})
    router = start_router(make_config({"gpt-4o": {"backends": [slow]}}))
    fake_a.fail_always({"chunk_delay": 2})
    with sdk(router) as client:
        stream = client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
        with pytest.raises(openai.APIError) as caught:
            list(stream)
    assert "stopped sending" in caught.value.message
    assert router.wait_access(1)[-1]["outcome"] == "timeout"


def test_fallback_model_answers_when_the_pool_fails(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    models: dict[str, Any] = {
        "gpt-4o": {"fallbacks": ["gpt-4o-mini"], "backends": [backend(fake_a, UPSTREAM_KEY_A)]},
        "gpt-4o-mini": {"backends": [backend(fake_b, UPSTREAM_KEY_B, model="small-model")]},
    }
    router = start_router(make_config(models))
    fake_a.fail_always({"status": 500})
    with sdk(router) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    assert raw.headers["x-switchyard-backend"] == "fake-b"
    (request,) = fake_b.requests()
    assert '"model":"small-model"' in request["body"]
    line = router.wait_access(1)[-1]
    assert (line["model"], line["served_model"]) == ("gpt-4o", "gpt-4o-mini")


def test_retry_budget_caps_retries_in_an_outage(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    pool = {
        "strategy": "round-robin",
        "backends": [backend(fake_a, UPSTREAM_KEY_A), backend(fake_b, UPSTREAM_KEY_B)],
    }
    config = make_config(
        {"gpt-4o": pool},
        retry={"budget_percent": 0.1, "budget_min_per_second": 0, "budget_window": 60},
        health={"failures_to_eject": 1000},
    )
    router = start_router(config)
    fake_a.fail_always({"status": 500})
    fake_b.fail_always({"status": 500})
    with sdk(router) as client:
        for _ in range(50):
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(model="gpt-4o", messages=HELLO)
    upstream = len(fake_a.requests()) + len(fake_b.requests())
    assert 50 <= upstream <= 55  # 10% of 50 requests may be retried, no more
