"""The OpenAI surface through the router, driven by the official SDK (sync and async)."""

from __future__ import annotations

import array
import base64

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.conftest import CLIENT_KEY, LIMITED_KEY, Fake
from tests.functional.router_process import RouterProcess

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]


def test_chat_sync(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    reply = raw.parse()
    backend = raw.headers["x-switchyard-backend"]
    assert reply.choices[0].message.content == f"{backend} says: Hello there"
    assert reply.model == "gpt-4o"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 4
    # The upstream's request id comes back to the client.
    assert raw.headers["x-request-id"].startswith(f"req_{backend}_")


async def test_chat_async(aclient: openai.AsyncOpenAI) -> None:
    reply = await aclient.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert reply.choices[0].message.content is not None
    assert reply.choices[0].message.content.endswith("says: Hello there")
    assert reply.choices[0].finish_reason == "stop"


def test_chat_stream_sync(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("says: Hello there")
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


async def test_chat_stream_async(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, extra_body={"fake": {"words": 50}}
    )
    deltas = [c.choices[0].delta.content async for c in stream if c.choices]
    words = "".join(d or "" for d in deltas).split()
    assert words == [f"w{i}" for i in range(1, 51)]


def test_stream_chunks_relayed_as_sent(router: RouterProcess, fake_a: Fake) -> None:
    """Each upstream event arrives as its own chunk, byte for byte (no re-encoding)."""

    body = {"model": "gpt-4o", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    with httpx.stream(
        "POST", f"{router.base_url}/chat/completions", json=body, headers=headers
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(response.iter_raw())
    events = raw.split(b"\n\n")
    assert events[-1] == b""
    assert events[-2] == b"data: [DONE]"
    assert all(e.startswith(b"data: {") for e in events[:-2])


def _floats(embedding: list[float] | str) -> list[float]:
    """The SDK hands back a base64 answer as sent when the caller asked for base64."""
    if isinstance(embedding, str):
        return array.array("f", base64.b64decode(embedding)).tolist()
    return embedding


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings(client: openai.OpenAI, fake_a: Fake, encoding: str) -> None:
    reply = client.embeddings.create(
        model="text-embedding-3-small",
        input=["alpha", "beta"],
        encoding_format=encoding,  # type: ignore[arg-type]
        dimensions=16,
    )
    assert [d.index for d in reply.data] == [0, 1]
    vectors = [_floats(d.embedding) for d in reply.data]
    assert all(len(v) == 16 for v in vectors)
    # Deterministic per input, so the answer through the router equals the upstream's own.
    with openai.OpenAI(base_url=fake_a.v1, api_key="upstream-secret-key-aaaa") as direct:
        expected = direct.embeddings.create(
            model="text-embedding-3-small",
            input=["alpha", "beta"],
            dimensions=16,
            encoding_format="float",
        )
    assert vectors[1] == pytest.approx(expected.data[1].embedding, rel=1e-6)


def test_embeddings_base64_passthrough(router: RouterProcess) -> None:

    response = httpx.post(
        f"{router.base_url}/embeddings",
        json={"model": "text-embedding-3-small", "input": "x", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert response.status_code == 200
    assert isinstance(response.json()["data"][0]["embedding"], str)


def test_responses(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="gpt-4o", input="Explain routers")
    assert reply.output_text.endswith("says: Explain routers")
    assert reply.status == "completed"


async def test_responses_stream(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.responses.create(model="gpt-4o", input="Explain routers", stream=True)
    events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.endswith("says: Explain routers")


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    model = client.models.retrieve("gpt-4o-mini")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o-mini", "model", "switchyard")


def test_models_respect_key_allow_list(router: RouterProcess) -> None:
    limited = openai.OpenAI(base_url=router.base_url, api_key=LIMITED_KEY, max_retries=0)
    with limited:
        _check_limited(limited)


def _check_limited(limited: openai.OpenAI) -> None:
    assert [m.id for m in limited.models.list()] == ["gpt-4o-mini"]
    with pytest.raises(openai.NotFoundError) as caught:
        limited.models.retrieve("gpt-4o")
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        limited.chat.completions.create(model="gpt-4o", messages=HELLO)
    reply = limited.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.choices[0].message.content is not None


def test_health_endpoints(router: RouterProcess) -> None:

    assert httpx.get(f"{router.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{router.url}/readyz").json()
    assert ready["status"] == "ready"
    assert any(p.startswith("<Pool gpt-4o round-robin [2 healthy") for p in ready["pools"])
