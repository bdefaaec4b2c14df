"""What goes upstream: the client's bytes as sent, the backend's credential, never the client's."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp
import httpx
import openai
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

AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]


def test_client_key_never_reaches_upstream(
    client: openai.OpenAI, fake_a: Fake, fake_b: Fake
) -> None:
    client.chat.completions.create(model="gpt-4o", messages=HELLO)
    client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True).close()
    client.embeddings.create(model="text-embedding-3-small", input="x")
    client.responses.create(model="gpt-4o", input="x")
    seen = fake_a.requests() + fake_b.requests()
    assert len(seen) == 4
    for request in seen:
        assert CLIENT_KEY not in str(request)
        expected = UPSTREAM_KEY_A if request in fake_a.requests() else UPSTREAM_KEY_B
        assert request["headers"]["authorization"] == f"Bearer {expected}"
        assert "openai-organization" not in request["headers"]


def test_body_goes_upstream_byte_for_byte(
    router: RouterProcess, fake_a: Fake, fake_b: Fake
) -> None:
    body = (
        b'{ "model" : "gpt-4o",\n  "messages": [{"role": "user", "content": "caf\\u00e9"}],'
        b' "unknown_field": {"kept": [1, 2.50, null]} }'
    )
    response = httpx.post(f"{router.base_url}/chat/completions", content=body, headers=AUTH)
    assert response.status_code == 200
    (request,) = fake_a.requests() + fake_b.requests()
    assert request["body"].encode() == body


def test_model_rename_changes_only_the_model(start_router: RouterFactory, fake_a: Fake) -> None:
    models = {"gpt-4o": {"backends": [backend(fake_a, UPSTREAM_KEY_A, model="upstream-4o")]}}
    router = start_router(make_config(models))
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "z": 1}'
    reply = httpx.post(f"{router.base_url}/chat/completions", content=body, headers=AUTH)
    assert reply.status_code == 200
    (request,) = fake_a.requests()
    assert (
        request["body"]
        == '{"model":"upstream-4o","messages":[{"role":"user","content":"hi"}],"z":1}'
    )


def test_azure_backend(start_router: RouterFactory, fake_a: Fake) -> None:
    azure = {
        "name": "azure",
        "provider": "azure",
        "url": fake_a.url,
        "api_key": UPSTREAM_KEY_A,
        "deployment": "prod-4o",
        "api_version": "2024-10-21",
    }
    router = start_router(make_config({"gpt-4o": {"backends": [azure]}}))
    with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=HELLO)
        assert reply.choices[0].message.content == "fake-a says: Hello"
        client.embeddings.create(model="gpt-4o", input="x")
    chat, embeddings = fake_a.requests()
    assert chat["path"] == "/openai/deployments/prod-4o/chat/completions"
    assert embeddings["path"] == "/openai/deployments/prod-4o/embeddings"
    assert chat["query"] == {"api-version": "2024-10-21"}
    assert chat["headers"]["api-key"] == UPSTREAM_KEY_A
    assert "authorization" not in chat["headers"]


def test_openai_and_azure_side_by_side(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    azure = {
        "name": "azure",
        "provider": "azure",
        "url": fake_b.url,
        "api_key": UPSTREAM_KEY_B,
        "deployment": "dep",
    }
    pool = {"strategy": "round-robin", "backends": [backend(fake_a, UPSTREAM_KEY_A), azure]}
    router = start_router(make_config({"gpt-4o": pool}))
    with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        names = {
            client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=HELLO
            ).headers["x-switchyard-backend"]
            for _ in range(4)
        }
    assert names == {"fake-a", "azure"}


def test_weighted_split_over_300_requests(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    pool = {
        "strategy": "weighted",
        "backends": [
            backend(fake_a, UPSTREAM_KEY_A, weight=3),
            backend(fake_b, UPSTREAM_KEY_B, weight=1),
        ],
    }
    router = start_router(make_config({"gpt-4o": pool}))

    async def run() -> Counter[str]:
        counts: Counter[str] = Counter()
        async with openai.AsyncOpenAI(base_url=router.base_url, api_key=CLIENT_KEY) as client:

            async def one() -> None:
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o", messages=HELLO
                )
                counts[raw.headers["x-switchyard-backend"]] += 1

            for _ in range(30):
                await asyncio.gather(*(one() for _ in range(10)))
        return counts

    counts = asyncio.run(run())
    assert sum(counts.values()) == 300
    assert abs(counts["fake-a"] / 300 - 0.75) < 0.03
    assert abs(counts["fake-b"] / 300 - 0.25) < 0.03


async def test_client_disconnect_cancels_upstream_stream(
    router: RouterProcess, fake_a: Fake, fake_b: Fake
) -> None:
    fake_a.fail_always({"chunk_delay": 0.5})
    fake_b.fail_always({"chunk_delay": 0.5})
    body = {"model": "gpt-4o", "messages": HELLO, "stream": True, "fake": {"words": 100}}
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{router.base_url}/chat/completions", json=body, headers=AUTH
        )
        await response.content.readuntil(b"\n\n")  # the stream has started
        closed_at = time.monotonic()
        response.close()  # the client goes away
    # Within a second of the client leaving, the upstream request is cancelled.
    holder = _holder(fake_a, fake_b)
    assert await asyncio.to_thread(holder.wait_cancelled, 1, 1.0)
    assert time.monotonic() - closed_at < 1.5
    assert router.wait_access(1)[-1]["outcome"] == "client_disconnect"


async def test_client_disconnect_cancels_upstream_request(
    router: RouterProcess, fake_a: Fake, fake_b: Fake
) -> None:
    """Also while waiting for a slow non-streamed answer (nothing sent to the client yet)."""
    fake_a.fail_always({"delay_first_byte": 10})
    fake_b.fail_always({"delay_first_byte": 10})
    body = {"model": "gpt-4o", "messages": HELLO}
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(
            session.post(f"{router.base_url}/chat/completions", json=body, headers=AUTH)
        )
        holder = await asyncio.to_thread(_wait_inflight, fake_a, fake_b)
        request.cancel()
        closed_at = time.monotonic()
    assert await asyncio.to_thread(holder.wait_cancelled, 1, 1.0)
    assert time.monotonic() - closed_at < 1.5
    assert router.wait_access(1)[-1]["status"] == 499


def _holder(a: Fake, b: Fake) -> Fake:
    """The fake that received the test's one request."""
    (fake,) = [fake for fake in (a, b) if fake.requests()]
    return fake


def _wait_inflight(a: Fake, b: Fake) -> Fake:
    """Until one fake holds the request (each probe is a blocking HTTP round trip)."""
    for _ in range(500):
        for fake in (a, b):
            if fake.stats()["inflight"] >= 1:
                return fake
    raise AssertionError("the request never reached a fake upstream")
