"""Tokens: the estimate charged at admission, and the real usage the upstream reports.

The estimate follows OpenAI's own accounting for rate limits: the prompt's size plus the most the
answer may cost (``max_tokens`` and its newer spellings). The bytes-per-token ratio is a
config setting (4 for English by OpenAI's rule of thumb). Real usage settles the difference.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.config import Endpoint, TokenEstimateConfig

_MAX_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def estimate_tokens(
    payload: dict[str, Any], body: bytes, endpoint: Endpoint, config: TokenEstimateConfig
) -> int:
    prompt = int(len(body) / config.bytes_per_token) + 1
    if endpoint == "embeddings":
        return prompt
    for field in _MAX_OUTPUT_FIELDS:
        value = payload.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return prompt + value
    return prompt + config.default_max_tokens


def total_tokens(usage: object) -> int | None:
    """``usage.total_tokens`` of any endpoint (chat, embeddings and responses all report it)."""
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    return None


def usage_from_json(body: bytes | None) -> int | None:
    """Total tokens of a non-streamed answer, or None if it reports none."""
    if not body:
        return None
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return total_tokens(answer.get("usage")) if isinstance(answer, dict) else None


def with_usage_requested(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The payload asking for the usage chunk of a chat stream, or None if it already does."""
    options = payload.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return None
    merged = (
        {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    )
    return {**payload, "stream_options": merged}
