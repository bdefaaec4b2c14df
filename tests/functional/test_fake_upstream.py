"""The fake upstream, driven as a real process through the official OpenAI SDK.

The router's functional tests and benchmarks stand on this fake, so its wire shapes and its
scripted faults are checked here the way a client meets them.
"""

from __future__ import annotations

import array
import base64
import re
import signal
import subprocess
import sys
import time

import aiohttp
import httpx2
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.fake_process import REPO_ROOT, fake_upstream

NAME = "alpha"
KEY = "sk-fake-test-key"
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello big world"}]


@pytest.fixture(scope="module")
def url():
    with fake_upstream(NAME) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def keyed_url():
    with fake_upstream("keyed", api_key=KEY) as base_url:
        yield base_url


@pytest.fixture
def http(url):
    with httpx2.Client(base_url=url, timeout=10) as client:
        client.delete("/_fake/faults").raise_for_status()
        client.delete("/_fake/requests").raise_for_status()
        yield client


@pytest.fixture
def client(url, http):
    with openai.OpenAI(base_url=url + "/v1", api_key="sk-anything", max_retries=0) as sdk:
        yield sdk


def chat(client, **kwargs):
    return client.chat.completions.create(model="gpt-4o", messages=USER, **kwargs)


def fake(**options):
    return {"extra_body": {"fake": options}}


# --- endpoints ----------------------------------------------------------------------------------


def test_models_list_and_retrieve(client):
    assert [m.id for m in client.models.list()] == [
        "gpt-4o",
        "gpt-4o-mini",
        "text-embedding-3-small",
    ]
    assert client.models.retrieve("gpt-4o-mini").object == "model"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("nope")
    assert caught.value.code == "model_not_found"


def test_chat_answers_from_input_with_headers(client):
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "you"}],
        },
    ]
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    completion = raw.parse()
    assert re.fullmatch(r"req_alpha_\d+", raw.headers["x-request-id"])
    assert int(raw.headers["openai-processing-ms"]) >= 0
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    assert completion.system_fingerprint == "fp_alpha"
    choice = completion.choices[0]
    assert (choice.message.role, choice.message.content) == ("assistant", "alpha says: hi you")
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 4)
    assert completion.usage.total_tokens == 8


def test_chat_words_and_max_tokens(client):
    assert chat(client, **fake(words=4)).choices[0].message.content == "w1 w2 w3 w4"
    cut = chat(client, max_tokens=3, **fake(words=10))
    assert (cut.choices[0].message.content, cut.choices[0].finish_reason) == ("w1 w2 w3", "length")
    assert cut.usage is not None
    assert cut.usage.completion_tokens == 3


def test_chat_stream_without_usage(client):
    with chat(client, stream=True) as stream:
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    words = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert words == ["alpha ", "says: ", "hello ", "big ", "world"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert all(c.usage is None and c.object == "chat.completion.chunk" for c in chunks)


def test_chat_stream_include_usage(client):
    with chat(client, stream=True, stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 5)
    assert body[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in body)


def test_chat_stream_helper_accumulates(client):
    with client.chat.completions.stream(model="gpt-4o", messages=USER) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "alpha says: hello big world"


async def test_chat_stream_wire_one_event_per_http_chunk(url):
    body = {
        "model": "gpt-4o",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["transfer-encoding"] == "chunked"
        events, partial = [], b""
        async for data, end_of_chunk in resp.content.iter_chunks():
            partial += data
            if end_of_chunk and partial:  # an empty one is the chunked encoding's terminator
                events.append(partial)
                partial = b""
    assert events[-1] == b"data: [DONE]\n\n"
    payloads = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert all(e.startswith(b"data: ") and e.endswith(b"\n\n") for e in events)
    assert all(p["usage"] is None for p in payloads[:-1])
    assert payloads[-1]["choices"] == []
    assert payloads[-1]["usage"]["total_tokens"] == 8


async def test_async_client_chat_stream(url):
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, extra_body={"fake": {"words": 3}}
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "w1 w2 w3"


def test_embeddings_float_and_base64_agree(client):
    inputs = ["one two", "three"]
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=inputs, encoding_format="float", dimensions=16
    )
    default = client.embeddings.create(model="text-embedding-3-small", input=inputs, dimensions=16)
    explicit = client.embeddings.create(
        model="text-embedding-3-small", input="one two", encoding_format="base64"
    )
    assert [d.embedding for d in floats.data] == [d.embedding for d in default.data]
    assert len(floats.data[0].embedding) == 16
    assert all(-1 <= v <= 1 for v in floats.data[1].embedding)
    assert floats.data[0].embedding != floats.data[1].embedding
    raw = base64.b64decode(str(explicit.data[0].embedding))
    assert array.array("f", raw).tolist() == floats.data[0].embedding[:8]
    assert (floats.usage.prompt_tokens, floats.usage.total_tokens) == (3, 3)


def test_embeddings_token_inputs(client):
    one = client.embeddings.create(model="e", input=[1, 2, 3], encoding_format="float")
    many = client.embeddings.create(model="e", input=[[1, 2, 3], [4]], encoding_format="float")
    assert len(one.data) == 1
    assert [d.index for d in many.data] == [0, 1]
    assert many.data[0].embedding == one.data[0].embedding
    assert many.usage.prompt_tokens == 4


def test_responses_non_stream(client):
    response = client.responses.create(model="gpt-4o", input="hi there")
    assert response.id.startswith("resp_")
    assert (response.status, response.output_text) == ("completed", "alpha says: hi there")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (2, 4)


def test_responses_input_items_and_max_output_tokens(client):
    items = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "input_text", "text": "second one please"}]},
    ]
    response = client.responses.create(model="gpt-4o", input=items, max_output_tokens=3)
    assert (response.status, response.output_text) == ("incomplete", "alpha says: second")
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_responses_stream_events(client):
    with client.responses.create(model="gpt-4o", input="hi", stream=True) as stream:
        events = list(stream)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        "alpha says: hi"
    )


def test_responses_stream_helper(client):
    with client.responses.stream(model="gpt-4o", input="hi", **fake(words=5)) as stream:
        final = stream.get_final_response()
    assert final.output_text == "w1 w2 w3 w4 w5"


def test_azure_paths_use_api_key_header(keyed_url):
    with openai.AzureOpenAI(
        azure_endpoint=keyed_url, api_key=KEY, api_version="2024-10-21", max_retries=0
    ) as azure:
        completion = azure.chat.completions.create(model="my-deployment", messages=USER)
        embedding = azure.embeddings.create(model="emb", input="x", encoding_format="float")
        response = azure.responses.create(model="my-deployment", input="hey")
    assert completion.choices[0].message.content == "keyed says: hello big world"
    assert len(embedding.data[0].embedding) == 8
    assert response.output_text == "keyed says: hey"
    paths = [r["path"] for r in httpx2.get(keyed_url + "/_fake/requests").json()["data"][-3:]]
    assert paths == [
        "/openai/deployments/my-deployment/chat/completions",
        "/openai/deployments/emb/embeddings",
        "/openai/responses",
    ]


def test_azure_requires_api_version(url):
    answer = httpx2.post(url + "/openai/deployments/d/chat/completions", json={"messages": USER})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "api-version"


def test_auth_required_with_api_key(keyed_url):
    with openai.OpenAI(base_url=keyed_url + "/v1", api_key=KEY, max_retries=0) as good:
        assert chat(good).choices[0].message.content.startswith("keyed says:")
    with (
        openai.OpenAI(base_url=keyed_url + "/v1", api_key="sk-wrong-1234", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        chat(bad)
    assert caught.value.body == {
        "message": "Incorrect API key provided.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert "sk-wrong" not in caught.value.response.text
    azure_with_bearer = httpx2.post(
        keyed_url + "/openai/responses?api-version=1",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "m", "input": "x"},
    )
    assert azure_with_bearer.status_code == 401


def test_malformed_json_is_openai_400(http):
    answer = http.post("/v1/chat/completions", content=b"{not json")
    assert answer.status_code == 400
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert http.get("/v1/nowhere").json()["error"]["message"] == "Invalid URL (GET /v1/nowhere)"


# --- faults -------------------------------------------------------------------------------------


def test_status_fault_500(client):
    with pytest.raises(openai.InternalServerError) as caught:
        chat(client, **fake(status=500))
    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"


def test_retry_after_fault_is_429(client):
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, **fake(retry_after=3))
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.code == "rate_limit_exceeded"


def test_delay_first_byte(client, http):
    started = time.perf_counter()
    chat(client, **fake(delay_first_byte=0.2))
    assert time.perf_counter() - started >= 0.2
    cancelled = http.get("/_fake/stats").json()["cancelled"]
    with pytest.raises(openai.APITimeoutError):
        chat(client.with_options(timeout=0.2), **fake(delay_first_byte=5))
    # The client gave up: the fake sees the disconnect and cancels the handler.
    assert http.get("/_fake/wait", params={"cancelled": cancelled + 1}).status_code == 200


def test_chunk_delay_spaces_events(client):
    started = time.perf_counter()
    with chat(client, stream=True, **fake(words=4, chunk_delay=0.03)) as stream:
        chunks = list(stream)
    assert len(chunks) == 6
    assert time.perf_counter() - started >= 5 * 0.03


def test_cut_after_breaks_the_stream(client, http):
    cancelled = http.get("/_fake/stats").json()["cancelled"]
    received = []
    with (
        pytest.raises((openai.APIError, httpx2.RemoteProtocolError)),
        chat(client, stream=True, **fake(words=20, cut_after=3)) as stream,
    ):
        received.extend(stream)
    assert len(received) == 3
    # A cut the fault made on purpose is not a client disconnect.
    assert http.get("/_fake/stats").json()["cancelled"] == cancelled


def test_cut_after_truncates_a_json_body(client):
    with pytest.raises(openai.APIConnectionError):
        chat(client, **fake(cut_after=0))


def test_drop_closes_without_response(client):
    with pytest.raises(openai.APIConnectionError):
        chat(client, **fake(drop=True))


def test_fault_queue_applies_in_order(client, http):
    queued = http.post("/_fake/faults", json={"next": [{"status": 503}, {"retry_after": 1}]})
    assert queued.json() == {"queued": 2, "always": False}
    with pytest.raises(openai.InternalServerError):
        chat(client)
    with pytest.raises(openai.RateLimitError):
        chat(client)
    assert chat(client).choices[0].finish_reason == "stop"


def test_always_fault_until_cleared(client, http):
    http.post("/_fake/faults", json={"always": {"status": 502}}).raise_for_status()
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            chat(client)
    # A body fault wins over the standing one.
    assert chat(client, **fake(status=200)).choices[0].message.content
    http.delete("/_fake/faults").raise_for_status()
    assert chat(client).choices[0].message.content


def test_bad_fault_is_400(client, http):
    with pytest.raises(openai.BadRequestError):
        chat(client, **fake(explode=True))
    assert http.post("/_fake/faults", json={"next": [{"status": "x"}]}).status_code == 400


def test_requests_are_recorded(client, http):
    chat(client, extra_headers={"X-Trace": "t-1"}, extra_query={"q": "1"}, **fake(words=1))
    http.get("/_fake/stats")  # control requests are not recorded
    [seen] = http.get("/_fake/requests").json()["data"]
    assert (seen["method"], seen["path"], seen["query"]) == (
        "POST",
        "/v1/chat/completions",
        {"q": "1"},
    )
    assert seen["headers"]["authorization"] == "Bearer sk-anything"
    assert seen["headers"]["x-trace"] == "t-1"
    assert orjson.loads(seen["body"])["fake"] == {"words": 1}


@pytest.mark.parametrize(
    "options",
    [{"words": 50, "chunk_delay": 0.5}, {"words": 200_000}],
    ids=["cancelled-while-sleeping", "gone-while-writing"],
)
async def test_client_disconnect_is_counted(url, options):
    body = {"model": "m", "messages": USER, "stream": True, "fake": options}
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/_fake/stats") as answer:
            before = (await answer.json())["cancelled"]
        async with session.post(url + "/v1/chat/completions", json=body) as resp:
            await resp.content.readuntil(b"\n\n")
            resp.close()  # drop the connection mid-stream
        wait = {"cancelled": str(before + 1), "timeout": "5"}
        async with session.get(url + "/_fake/wait", params=wait) as answer:
            assert answer.status == 200
            assert (await answer.json())["inflight"] == 0
        too_many = {"cancelled": "1000000", "timeout": "0.05"}
        async with session.get(url + "/_fake/wait", params=too_many) as answer:
            assert answer.status == 408


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(signum):
    args = [sys.executable, "-m", "benchmarks.fake_upstream", "--port", "0", "--name", "s"]
    with subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        assert re.fullmatch(r"READY http://127\.0\.0\.1:\d+\n", process.stdout.readline())
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
