"""Per-key limits through the router: RPM, TPM, concurrency, headers, 429s, settled usage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.conftest import (
    UPSTREAM_KEY_A,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.router_process import RouterProcess
from tests.redis_server import RedisServer

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
LIMITED = "sk-test-limits-key-0123456789"


def limited_config(fake: Fake, limits: dict[str, int], **sections: Any) -> dict[str, Any]:
    config = make_config({"gpt-4o": {"backends": [backend(fake, UPSTREAM_KEY_A)]}}, **sections)
    config["keys"].append({"name": "metered", "key": LIMITED, "limits": limits})
    return config


@pytest.fixture
def sdk_for() -> Iterator[Any]:
    clients: list[openai.OpenAI] = []

    def make(router: RouterProcess, key: str = LIMITED) -> openai.OpenAI:
        client = openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def chat_raw(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO, **extra)


def test_rpm_limit_headers_and_429(start_router: RouterFactory, fake_a: Fake, sdk_for: Any) -> None:
    router = start_router(limited_config(fake_a, {"rpm": 3}))
    client = sdk_for(router)
    remaining = []
    for _ in range(3):
        raw = chat_raw(client)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    error = caught.value
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    assert int(error.response.headers["retry-after"]) >= 1
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(fake_a.requests()) == 3  # the refused request never went upstream
    # A key without limits is not slowed by another key's limit.
    assert chat_raw(sdk_for(router, key="sk-test-client-key-0123456789")).http_response.is_success


def test_tpm_too_large_request_is_refused(
    start_router: RouterFactory, fake_a: Fake, sdk_for: Any
) -> None:
    router = start_router(limited_config(fake_a, {"tpm": 1000}))
    client = sdk_for(router)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=5000)
    assert caught.value.type == "tokens"
    assert "retry-after" not in caught.value.response.headers
    raw = chat_raw(client, max_tokens=100)
    assert raw.headers["x-ratelimit-limit-tokens"] == "1000"
    assert fake_a.requests()  # only the second one went upstream
    assert len(fake_a.requests()) == 1


def _remaining_tokens(raw: Any) -> int:
    return int(raw.headers["x-ratelimit-remaining-tokens"])


def test_tokens_settle_with_real_usage(
    start_router: RouterFactory, fake_a: Fake, sdk_for: Any
) -> None:
    router = start_router(limited_config(fake_a, {"tpm": 100_000}))
    client = sdk_for(router)
    first = _remaining_tokens(chat_raw(client, max_tokens=10_000))
    second = _remaining_tokens(chat_raw(client, max_tokens=10_000))
    # Admission charged ~10,000 each; the first answer used a handful of tokens, and the
    # refund arrived before the second admission. Unsettled, second would be ~first - 10,000.
    assert second > first - 1000


def test_stream_usage_is_asked_for_settled_and_hidden(
    start_router: RouterFactory, fake_a: Fake, sdk_for: Any
) -> None:
    router = start_router(limited_config(fake_a, {"tpm": 100_000}))
    client = sdk_for(router)
    first = _remaining_tokens(chat_raw(client, max_tokens=10_000))
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, max_tokens=10_000, stream=True
    )
    chunks = list(stream)
    assert chunks
    assert all(chunk.choices for chunk in chunks)  # no usage-only chunk: the client did not ask
    upstream_body = fake_a.requests()[-1]["body"]
    assert '"include_usage":true' in upstream_body.replace(" ", "")
    third = _remaining_tokens(chat_raw(client, max_tokens=10_000))
    assert third > first - 2000  # the stream's ~10,000 estimate was refunded from its usage
    # A client that asks for usage still gets it.
    asked = list(
        client.chat.completions.create(
            model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert asked[-1].choices == []
    assert asked[-1].usage is not None


def test_concurrency_slot_is_held_and_always_returned(
    start_router: RouterFactory, fake_a: Fake, sdk_for: Any
) -> None:
    router = start_router(limited_config(fake_a, {"concurrency": 1}))
    client = sdk_for(router)
    fake_a.fail_next({"chunk_delay": 0.05})
    with client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, extra_body={"fake": {"words": 10}}
    ) as stream:
        next(iter(stream))  # the stream is open: it holds the key's one slot
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=HELLO)
        assert caught.value.type == "requests"
        assert "concurrent" in caught.value.message
        list(stream)
    assert chat_raw(client).http_response.is_success  # returned after a clean end
    fake_a.fail_next({"cut_after": 2})
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    assert chat_raw(client).http_response.is_success  # returned after an upstream error
    fake_a.fail_next({"chunk_delay": 0.5})
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, extra_body={"fake": {"words": 50}}
    )
    next(iter(stream))
    stream.close()  # the client goes away mid-stream
    assert _eventually_admitted(client)  # returned after a disconnect


def _eventually_admitted(client: openai.OpenAI, within: float = 2.0) -> bool:
    """The slot comes back when the router notices the disconnect: wait for it, bounded."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            chat_raw(client)
            return True
        except openai.RateLimitError:
            continue
    return False


def test_two_routers_share_one_limit_in_redis(start_router: RouterFactory, fake_a: Fake) -> None:
    import asyncio

    with RedisServer() as redis_server:
        # A generous timeout: this is about sharing, and a loaded machine must not fail open.
        redis = {"url": redis_server.url, "timeout_ms": 2000}
        config = limited_config(fake_a, {"rpm": 60}, redis=redis)
        routers = [start_router(config), start_router(config)]

        async def hammer() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as http:

                async def one(router: RouterProcess) -> int:
                    response = await http.post(
                        f"{router.base_url}/chat/completions",
                        json={"model": "gpt-4o", "messages": HELLO},
                        headers={"Authorization": f"Bearer {LIMITED}"},
                    )
                    return response.status_code

                started = time.monotonic()
                codes = await asyncio.gather(*(one(routers[i % 2]) for i in range(160)))
                hammer.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
                return list(codes)

        codes = asyncio.run(hammer())
    admitted = codes.count(200)
    refill = 60 / 60 * hammer.elapsed  # type: ignore[attr-defined]
    assert set(codes) <= {200, 429}
    assert 59 <= admitted <= 60 + refill + 1


@pytest.mark.parametrize("failure", ["fail_open", "fail_closed"])
def test_redis_outage_follows_the_failure_policy(
    start_router: RouterFactory, fake_a: Fake, sdk_for: Any, failure: str
) -> None:
    with RedisServer() as redis_server:
        redis = {"url": redis_server.url, "failure": failure, "timeout_ms": 50}
        router = start_router(limited_config(fake_a, {"rpm": 1000}, redis=redis))
        client = sdk_for(router)
        assert chat_raw(client).headers["x-ratelimit-limit-requests"] == "1000"
        redis_server.stop()
        started = time.monotonic()
        if failure == "fail_open":
            raw = chat_raw(client)  # admitted unchecked: no limit headers to report
            assert raw.http_response.is_success
            assert "x-ratelimit-limit-requests" not in raw.headers
        else:
            with pytest.raises(openai.InternalServerError) as caught:
                client.with_options(max_retries=0).chat.completions.create(
                    model="gpt-4o", messages=HELLO
                )
            assert caught.value.status_code == 503
            assert caught.value.code == "limits_unavailable"
        assert time.monotonic() - started < 2  # nothing hangs on a dead Redis
        redis_server.start()
        assert _eventually_checked(client)
    assert any(r.get("msg") == "rate-limit store unavailable" for r in router.records())


def _eventually_checked(client: openai.OpenAI, within: float = 5.0) -> bool:
    """After Redis returns, the router reconnects by itself: limits are checked again."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if "x-ratelimit-limit-requests" in chat_raw(client).headers:
                return True
        except openai.APIStatusError:
            continue
    return False
