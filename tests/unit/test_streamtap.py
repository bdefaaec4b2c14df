"""The stream tap: first output (not the role chunk), usage of both stream kinds, the strip."""

from __future__ import annotations

import re

import orjson
from hypothesis import given
from hypothesis import strategies as st

from router.endpoints import ENDPOINTS
from router.upstream.streamtap import StreamTap
from router.usage import Usage

# What counts as chat output, as one regex: the definition the substring search must agree with.
CHAT_OUTPUT = re.compile(rb'"(?:content|refusal|arguments|reasoning_content|reasoning)":\s*"[^"]')
PIECES = st.sampled_from(
    [
        b'"content":',
        b'"refusal":',
        b'"arguments":',
        b'"reasoning_content":',
        b'"reasoning":',
        b'"role":',
        b'"content"',
        b'""',
        b'"',
        b" ",
        b" " * 70,
        b"\n",
        b"\t",
        b"null",
        b"x",
        b"{",
        b",",
    ]
)


def chat_event(delta: dict[str, object], **extra: object) -> bytes:
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    return b"data: " + orjson.dumps({**chunk, **extra}) + b"\n\n"


def output_seen(tap: StreamTap) -> bool:
    """Read through a call: mypy would otherwise keep an earlier ``is None`` narrowing."""
    return tap.first_output is not None


def test_the_role_chunk_is_not_output_but_content_is() -> None:
    tap = StreamTap("chat", strip=False)
    tap.feed(chat_event({"role": "assistant", "content": ""}))
    assert not output_seen(tap)
    tap.feed(chat_event({"content": "Hi"}))
    assert output_seen(tap)


def test_tool_call_arguments_are_output() -> None:
    tap = StreamTap("chat", strip=False)
    call = {"index": 0, "function": {"arguments": '{"city'}}
    tap.feed(chat_event({"tool_calls": [call]}))
    assert tap.first_output is not None


def test_first_output_is_stamped_once() -> None:
    tap = StreamTap("chat", strip=False)
    tap.feed(chat_event({"content": "a"}))
    first = tap.first_output
    tap.feed(chat_event({"content": "b"}))
    assert tap.first_output == first


def test_chat_usage_chunk_is_read_and_stripped_when_asked() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    last = b"data: " + orjson.dumps({"choices": [], "usage": usage}) + b"\n\n"
    done = b"data: [DONE]\n\n"
    for strip in (False, True):
        tap = StreamTap("chat", strip=strip)
        out = tap.feed(chat_event({"content": "x"}, usage=None) + last + done)
        assert tap.usage == Usage(3, 5, 8)
        assert (b'"usage":{' in out) is not strip
        assert out.endswith(done)


def test_responses_delta_and_completed_usage() -> None:
    tap = StreamTap("responses", strip=False)
    created = {"type": "response.created", "response": {"usage": None}}
    tap.feed(b"event: response.created\ndata: " + orjson.dumps(created) + b"\n\n")
    assert not output_seen(tap)
    delta = {"type": "response.output_text.delta", "delta": "Hi"}
    tap.feed(b"event: response.output_text.delta\ndata: " + orjson.dumps(delta) + b"\n\n")
    assert output_seen(tap)
    usage = {"input_tokens": 4, "output_tokens": 6, "total_tokens": 10}
    completed = {"type": "response.completed", "response": {"usage": usage}}
    tap.feed(b"event: response.completed\ndata: " + orjson.dumps(completed) + b"\n\n")
    assert tap.usage == Usage(4, 6, 10)


@given(st.lists(PIECES, max_size=12).map(b"".join))
def test_chat_output_search_agrees_with_the_regex(events: bytes) -> None:
    assert ENDPOINTS["chat"].output(events) is (CHAT_OUTPUT.search(events) is not None)


def test_spaced_json_output_is_found() -> None:
    tap = StreamTap("chat", strip=False)
    tap.feed(b'data: {"choices": [{"delta": {"content": ""}}]}\n\n')
    assert not output_seen(tap)
    tap.feed(b'data: {"choices": [{"delta": {"refusal":  "No"}}]}\n\n')
    assert output_seen(tap)


def test_the_last_usage_in_a_chunk_counts_and_only_the_usage_only_event_is_stripped() -> None:
    # A provider reporting usage in every chunk (cumulative), then the usage-only chunk.
    first = chat_event({"content": "a"}, usage={"prompt_tokens": 3, "total_tokens": 4})
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    last = b"data: " + orjson.dumps({"choices": [], "usage": usage}) + b"\n\n"
    done = b"data: [DONE]\n\n"
    for end in (b"\n\n", b"\r\n\r\n"):  # SSE lines may end in CRLF
        events = [event.replace(b"\n\n", end) for event in (first, last, done)]
        tap = StreamTap("chat", strip=True)
        out = tap.feed(b"".join(events))
        assert tap.usage == Usage(3, 2, 5)
        assert out == events[0] + events[2]


def test_a_multi_line_data_event_is_read() -> None:
    usage = orjson.dumps({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})
    event = b'data: {"choices": [],\ndata: "usage":' + usage + b"}\n\n"
    tap = StreamTap("chat", strip=False)
    assert tap.feed(event) == event
    assert tap.usage == Usage(1, 1, 2)
