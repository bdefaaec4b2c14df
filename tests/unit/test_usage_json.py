"""``usage_from_json`` agrees with a full parse, whether it parses the answer whole (a small
one) or only its ``usage`` object (a large one)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from router.usage import Usage, usage_from_json, usage_of

# Text a model could write, including the very bytes the fast path looks for.
TRICKY = st.sampled_from(['"usage":{', '"usage": {"total_tokens": 1}', "{", "}", '\\"', "\n"])
TEXT = st.lists(st.one_of(TRICKY, st.text(max_size=20)), max_size=6).map("".join)
COUNT = st.integers(min_value=0, max_value=10**9)
USAGE = st.fixed_dictionaries(
    {"prompt_tokens": COUNT, "completion_tokens": COUNT, "total_tokens": COUNT},
    optional={
        "prompt_tokens_details": st.fixed_dictionaries({"cached_tokens": COUNT}),
        "completion_tokens_details": st.fixed_dictionaries({"reasoning_tokens": COUNT}),
    },
)


def full_parse(body: bytes) -> Usage | None:
    answer = orjson.loads(body)
    return usage_of(answer.get("usage")) if isinstance(answer, dict) else None


@given(content=TEXT, usage=st.one_of(st.none(), USAGE), tail=st.booleans(), large=st.booleans())
def test_agrees_with_a_full_parse(
    content: str, usage: dict[str, Any] | None, tail: bool, large: bool
) -> None:
    if large:  # past the size parsed whole: only the usage object is found and parsed
        content += "x" * 17_000
    answer: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
    }
    if usage is not None:
        answer["usage"] = usage
    if tail:  # OpenAI adds fields after usage (service_tier, system_fingerprint)
        answer["system_fingerprint"] = content
    body = orjson.dumps(answer)
    assert usage_from_json(body) == full_parse(body)


def test_spaces_and_an_embeddings_answer() -> None:
    body = b'{"object": "list", "data": [{"embedding": [0.1, 0.2]}], '
    body += b'"usage": {"prompt_tokens": 3, "total_tokens": 3}}'
    assert usage_from_json(body) == Usage(3, 0, 3)


def test_no_usage_and_broken_bodies() -> None:
    assert usage_from_json(b'{"id": "x"}') is None
    assert usage_from_json(b'{"usage": null, "x": {"total_tokens": 5}}') is None
    assert usage_from_json(b'{"usage": {"total_tokens": 5') is None  # cut: no balanced object
    assert usage_from_json(b"not json") is None
    assert usage_from_json(b"") is None
    assert usage_from_json(None) is None


def test_usage_objects_outside_the_compact_shape_agree_with_a_full_parse() -> None:
    bodies = [
        b'{"id":"x","usage":{"prompt_tokens":1,"total_tokens":2}}',  # usage last: "}}" ends both
        b'{"usage":{"total_tokens":3,"x":{"y":{"z":1}}},"id":"x"}',  # nested deeper
        b'{"usage":{"note":"}}","prompt_tokens":1,"total_tokens":2},"id":"x"}',  # "}}" in a string
        b'{"usage": {"prompt_tokens": 4, "total_tokens": 4}, "id": "x"}',  # spaced
    ]
    for body in bodies:
        assert usage_from_json(body) == full_parse(body), body
        assert usage_from_json(body) is not None


def counted(usage: dict[str, Any], *names: str) -> int:
    """The first of ``usage[name]`` that is a count (an int >= 0, not a bool), or 0."""
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 0


def expected_usage(usage: dict[str, Any]) -> Usage | None:
    """What ``usage_of`` says, spelt out as its docstring does."""
    if not isinstance(usage.get("total_tokens"), int) or isinstance(usage["total_tokens"], bool):
        return None
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    return Usage(
        counted(usage, "prompt_tokens", "input_tokens"),
        counted(usage, "completion_tokens", "output_tokens"),
        usage["total_tokens"],
        counted(details, "cached_tokens") if isinstance(details, dict) else 0,
    )


# Anything a usage member could hold: counts, negatives, JSON's true, floats, strings, null.
VALUE = st.one_of(st.integers(-5, 10**9), st.booleans(), st.floats(0, 9), st.text(), st.none())
NAMES = ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "total_tokens")
DETAILS = st.one_of(VALUE, st.dictionaries(st.just("cached_tokens"), VALUE))
ANY_USAGE = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(NAMES, VALUE),
        "prompt_tokens_details": DETAILS,
        "input_tokens_details": DETAILS,
    },
)


@given(usage=ANY_USAGE)
def test_usage_of_takes_the_first_count_of_each_name(usage: dict[str, Any]) -> None:
    got = usage_of(usage)
    assert got == expected_usage(usage)
    assert got is None or type(got) is Usage


def test_usage_of_chat_and_responses_names() -> None:
    chat: dict[str, Any] = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    chat["prompt_tokens_details"] = {"cached_tokens": 2}
    assert usage_of(chat) == Usage(3, 4, 7, 2)
    responses: dict[str, Any] = {"input_tokens": 5, "output_tokens": 6, "total_tokens": 11}
    responses["input_tokens_details"] = {"cached_tokens": 1}
    assert usage_of(responses) == Usage(5, 6, 11, 1)
    assert usage_of({"prompt_tokens": True, "input_tokens": 2, "total_tokens": 2}) == Usage(2, 0, 2)
    assert usage_of({"total_tokens": 1.0}) is None
    assert usage_of([]) is None
