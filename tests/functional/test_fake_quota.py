"""The fake upstream as a provider account: its quota and its prefix cache, met through the
official SDK the way the router will meet them (issue 13 and the cache half of issue 14)."""

from __future__ import annotations

import re

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.conftest import Fake
from tests.functional.fake_process import fake_upstream

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello big world"}]
LIMIT_HEADERS = {
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
}
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")


def message_of(error: openai.APIStatusError) -> str:
    """The ``message`` of OpenAI's error body (the exception's own adds "Error code: ...")."""
    body = error.body
    assert isinstance(body, dict)
    return str(body["message"])


@pytest.fixture(scope="module")
def account():
    with fake_upstream("acct") as url:
        fake = Fake("acct", url)
        yield fake
        fake.http.close()


@pytest.fixture
def fake(account):
    account.reset()
    return account


@pytest.fixture
def client(fake):
    with openai.OpenAI(base_url=fake.v1, api_key="sk-anything", max_retries=0) as sdk:
        yield sdk


def chat(client, **kwargs):
    return client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER, **kwargs)


def limit_headers(raw) -> dict[str, str]:
    return {name: value for name, value in raw.headers.items() if name.startswith("x-ratelimit")}


# --- quota --------------------------------------------------------------------------------------


def test_no_quota_no_headers_by_default(client, fake):
    for _ in range(5):
        assert limit_headers(chat(client)) == {}
    assert fake.stats()["refused_429"] == 0


def test_openai_headers_on_every_answer(client, fake):
    fake.set_quota(rpm=60, tpm=10_000)
    headers = limit_headers(chat(client))
    assert set(headers) == LIMIT_HEADERS
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-limit-tokens"]) == (
        "60",
        "10000",
    )
    # One request and the prompt's 3 words charged before the answer; resets as Go durations.
    assert (headers["x-ratelimit-remaining-requests"], headers["x-ratelimit-reset-requests"]) == (
        "59",
        "1s",
    )
    assert (headers["x-ratelimit-remaining-tokens"], headers["x-ratelimit-reset-tokens"]) == (
        "9997",
        "18ms",
    )
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=USER, stream=True
    ) as raw:
        streamed = limit_headers(raw)
        assert "data: [DONE]" in list(raw.iter_lines())
    assert set(streamed) == LIMIT_HEADERS
    # The first answer's 5 output words were settled after it: 3 + 5 + 3 charged in all.
    assert 9989 <= int(streamed["x-ratelimit-remaining-tokens"]) < 9997
    assert all(GO_DURATION.match(streamed[name]) for name in streamed if "reset" in name)
    answered = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="one two"
    )
    assert set(limit_headers(answered)) == LIMIT_HEADERS


def test_past_the_request_quota_is_openai_429(client, fake):
    fake.set_quota(rpm=2, tpm=1000)
    chat(client)
    chat(client)
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    error = refused.value
    assert (error.type, error.code, error.param) == ("requests", "rate_limit_exceeded", None)
    assert re.fullmatch(
        r"Rate limit reached for gpt-4o in organization org-acct on requests per min \(RPM\):"
        r" Limit 2, Used 2, Requested 1\. Please try again in (\d+(\.\d+)?s|\d+ms)\."
        r" Visit https://platform\.openai\.com/account/rate-limits to learn more\.",
        message_of(error),
    )
    headers = error.response.headers
    assert 1 <= int(headers["retry-after"]) <= 30
    assert 1 <= int(headers["retry-after-ms"]) <= 30_000
    assert headers["x-ratelimit-remaining-requests"] == "0"
    stats = fake.stats()
    assert (stats["refused_429"], stats["refused_requests"], stats["refused_tokens"]) == (1, 1, 0)


def test_past_the_token_quota_is_a_tokens_429(client, fake):
    fake.set_quota(tpm=10)
    chat(client)  # 3 prompt words at admission, then its 5 output words: 8 of 10 spent
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    assert (refused.value.type, refused.value.code) == ("tokens", "rate_limit_exceeded")
    assert "on tokens per min (TPM): Limit 10, Used 8, Requested 3." in message_of(refused.value)
    assert "x-ratelimit-remaining-requests" not in refused.value.response.headers  # no rpm set
    too_long: list[ChatCompletionMessageParam] = [{"role": "user", "content": "w " * 20}]
    with pytest.raises(openai.RateLimitError) as too_large:
        client.chat.completions.create(model="gpt-4o", messages=too_long)
    assert message_of(too_large.value).startswith("Request too large for gpt-4o")
    assert fake.stats()["refused_tokens"] == 2


def test_a_refusal_comes_before_any_fault_and_leaves_it_queued(client, fake):
    fake.set_quota(rpm=1)
    chat(client)
    fake.fail_next({"status": 500})
    with pytest.raises(openai.RateLimitError):
        chat(client)
    fake.set_quota(rpm=1)  # a fresh bucket: the queued fault now meets the request
    with pytest.raises(openai.InternalServerError):
        chat(client)


def test_azure_sends_only_the_remaining_counts(fake):
    fake.set_quota(rpm=60, tpm=1000, headers="azure")
    answer = fake.http.post(
        "/openai/deployments/gpt-4o/chat/completions",
        params={"api-version": "2024-10-21"},
        json={"messages": USER},
    )
    assert answer.status_code == 200
    # Azure evaluates RPM over 10-second periods: 60 RPM leaves 10 at once, 9 after this one.
    assert limit_headers(answer) == {
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-remaining-tokens": "997",
    }


def test_headers_none_still_enforces(client, fake):
    fake.set_quota(rpm=1, headers="none")
    assert limit_headers(chat(client)) == {}
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    assert set(refused.value.response.headers) & LIMIT_HEADERS == set()
    assert "retry-after" in refused.value.response.headers
    assert fake.quota()["remaining_requests"] == 0


def test_the_sdk_retries_a_refusal_after_retry_after_ms(fake):
    # 120 a minute: a refused request may pass 500 ms later, which the SDK reads from
    # retry-after-ms and waits out before its own retry.
    fake.set_quota(rpm=120)
    with openai.OpenAI(base_url=fake.v1, api_key="sk-anything", max_retries=3) as sdk:
        answers = [sdk.chat.completions.create(model="gpt-4o", messages=USER) for _ in range(124)]
    assert len(answers) == 124
    assert 1 <= fake.stats()["refused_429"] <= 3 * 4


def test_command_line_quota():
    with (
        fake_upstream("cli", rpm=1, tpm=500, quota_headers="azure") as url,
        openai.OpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0) as sdk,
    ):
        first = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
        assert limit_headers(first) == {
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-remaining-tokens": "497",
        }
        with pytest.raises(openai.RateLimitError):
            sdk.chat.completions.create(model="gpt-4o", messages=USER)


# --- prefix cache -------------------------------------------------------------------------------

SYSTEM = " ".join(f"rule{i}" for i in range(12))  # three blocks of four


def conversation(user: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def test_no_cache_by_default(client, fake):
    for _ in range(3):
        usage = client.chat.completions.create(model="gpt-4o", messages=conversation("q")).usage
        assert usage is not None
        assert usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == 0


def test_chat_reports_cached_tokens_for_a_shared_prefix(client, fake):
    fake.set_prefix_cache(blocks=64, min_tokens=8, block_tokens=4)

    def cached(messages: list[ChatCompletionMessageParam]) -> int:
        usage = client.chat.completions.create(model="gpt-4o", messages=messages).usage
        assert usage is not None
        assert usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens is not None
        return int(usage.prompt_tokens_details.cached_tokens)

    assert cached(conversation("first question")) == 0
    assert cached(conversation("second question")) == 12
    assert cached([{"role": "system", "content": "other " + SYSTEM}]) == 0
    short: list[ChatCompletionMessageParam] = [{"role": "user", "content": "a b c d e"}]
    assert [cached(short), cached(short)] == [0, 0]  # one block: under min_tokens
    with client.chat.completions.create(
        model="gpt-4o",
        messages=conversation("third"),
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        *_, last = list(stream)
    assert last.usage is not None
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 12
    stats = fake.stats()
    assert (stats["prompt_tokens"], stats["cached_tokens"]) == (14 + 14 + 13 + 5 + 5 + 13, 24)


def test_responses_follow_up_hits_the_cache_of_its_history(client, fake):
    fake.set_prefix_cache(blocks=64, min_tokens=4, block_tokens=4)
    first = client.responses.create(model="gpt-4o", input="one two three four five")
    assert first.usage is not None
    assert first.usage.input_tokens_details.cached_tokens == 0
    with client.responses.stream(
        model="gpt-4o", input="six", previous_response_id=first.id
    ) as stream:
        second = stream.get_final_response()
    assert second.usage is not None
    # History (5 input words and the 7-word answer) + 1 new word; its first block was cached.
    assert second.usage.input_tokens == 13
    assert second.usage.input_tokens_details.cached_tokens == 4
