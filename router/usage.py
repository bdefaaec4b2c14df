"""Tokens: the estimate charged at admission, and the real usage the upstream reports.

The estimate follows OpenAI's own accounting for rate limits: the prompt's size plus the most the
answer may cost (``max_tokens`` and its newer spellings). The bytes-per-token ratio is a
config setting (4 for English by OpenAI's rule of thumb). Real usage settles the difference.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from router.config import TokenEstimateConfig
from router.endpoints import ENDPOINTS, Endpoint

_MAX_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def estimate_tokens(
    payload: dict[str, Any], body: bytes, endpoint: Endpoint, config: TokenEstimateConfig
) -> int:
    prompt = int(len(body) / config.bytes_per_token) + 1
    if not ENDPOINTS[endpoint].output_tokens:
        return prompt
    for field in _MAX_OUTPUT_FIELDS:
        value = payload.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return prompt + value
    return prompt + config.default_max_tokens


class Usage(NamedTuple):
    """Tokens an upstream reports: in (prompt), out (completion) and their total; ``cached``:
    the part of ``input`` served from the upstream's prompt cache."""

    input: int
    output: int
    total: int
    cached: int = 0


def _count(usage: dict[str, Any], name: str) -> int:
    """``usage[name]`` if it is a count (an int >= 0), else 0."""
    value = usage.get(name)
    return value if type(value) is int and value >= 0 else 0  # JSON's true is no count


def usage_of(usage: object) -> Usage | None:
    """The ``usage`` object of any endpoint: chat and embeddings say ``prompt_tokens`` and
    ``completion_tokens``, responses ``input_tokens`` and ``output_tokens``; all report
    ``total_tokens``, without which there is no usage to count."""
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if type(total) is not int:
        return None
    # Chat's names are tested here and the others only when those are no counts: every request
    # reporting usage comes through here, and a call of _count costs more than its test.
    prompt = usage.get("prompt_tokens")
    if type(prompt) is not int or prompt < 0:
        prompt = _count(usage, "input_tokens")
    completion = usage.get("completion_tokens")
    if type(completion) is not int or completion < 0:
        completion = _count(usage, "output_tokens")
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    if type(cached) is not int or cached < 0:
        cached = 0
    # The same tuple as Usage(...) makes, without the Python function namedtuple compiles for
    # its __new__: half the instructions.
    return _new_usage(Usage, (prompt, completion, total, cached))


_new_usage = tuple.__new__


_USAGE_KEY = b'"usage":'
# Below this size an answer whose usage object is not in OpenAI's compact shape is parsed whole
# (orjson reads 700 bytes in ~2 us, less than finding braces with Python calls); above it only
# the object is, as its braces are found (embeddings answers are tens of kilobytes of floats).
_PARSED_WHOLE = 16 * 1024


def usage_from_json(body: bytes | None) -> Usage | None:
    """The usage of a non-streamed answer, or None if it reports none.

    OpenAI's answers (chat, embeddings, responses) put ``usage`` after the output, so only that
    object is parsed where it can be found cheaply, not the whole answer. The key found is the
    last ``"usage":`` outside any string: inside a JSON string every quote is escaped, so the
    model's own words cannot forge it. Anything unexpected (no object there, not valid JSON)
    falls back to parsing the whole answer.

    OpenAI's compact shape is read first, in this frame (a call costs more than the search): the
    object ends at the first ``}}`` after its brace, with both braces (its last member an
    object: ``completion_tokens_details``) or the first (the answer's own brace follows). A
    strict parse that starts at an object's brace succeeds only on exactly that object, so a
    slice that parses is the object."""
    if not body:
        return None
    at = body.rfind(_USAGE_KEY)
    if at < 0:
        return None  # no usage key anywhere in the answer
    start = at + len(_USAGE_KEY)
    close = body.find(b"}}", start) if body[start : start + 1] == b"{" else -1
    if close >= 0:
        for end in (close + 2, close + 1):
            try:
                return usage_of(orjson.loads(body[start:end]))
            except orjson.JSONDecodeError:
                continue
    usage = _object_at(body, start) if len(body) > _PARSED_WHOLE else None
    if usage is not None:
        return usage_of(usage)
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return usage_of(answer.get("usage")) if isinstance(answer, dict) else None


def _object_at(body: bytes, start: int) -> dict[str, Any] | None:
    """The JSON object that starts at ``start`` (after spaces), if its braces balance and it
    parses; a usage object holds numbers and objects of numbers, no strings with braces."""
    open_at = body.find(b"{", start)
    if open_at < 0 or body[start:open_at].strip():
        return None
    depth, at = 1, open_at + 1
    while depth:
        close = body.find(b"}", at)
        if close < 0:
            return None
        inner = body.find(b"{", at, close)
        if inner >= 0:
            depth, at = depth + 1, inner + 1
        else:
            depth, at = depth - 1, close + 1
    try:
        value = orjson.loads(body[open_at:at])
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def with_usage_requested(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The payload asking for the usage chunk of a chat stream, or None if it already does."""
    options = payload.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return None
    merged = (
        {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    )
    return {**payload, "stream_options": merged}
