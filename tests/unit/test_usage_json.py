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
