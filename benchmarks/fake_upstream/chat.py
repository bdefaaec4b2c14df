"""``POST /v1/chat/completions`` (and the Azure deployment path): answers from its input.

The content is f"{name} says: {last user text}"; streams send one chunk per word, in the order
OpenAI does: a role chunk, the content chunks, a finish chunk, the usage chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from benchmarks.fake_upstream import account
from benchmarks.fake_upstream.call import Call
from benchmarks.fake_upstream.wire import (
    ApiError,
    count_words,
    new_id,
    parts_text,
    sse_data,
    truncate,
)

_TEXT_PARTS = ("text",)


async def chat_completions(call: Call) -> web.StreamResponse:
    messages = call.body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty array.", param="messages")
    limit = call.body.get("max_completion_tokens")
    if limit is None:
        limit = call.body.get("max_tokens")
    pieces, cut = truncate(call.answer(_last_user_text(messages)), limit)
    finish = "length" if cut else "stop"
    prompt, cached = account.usage(call.request, _turns(messages), call.estimate, len(pieces))
    usage = _usage(prompt, cached, len(pieces))
    base = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "system_fingerprint": f"fp_{call.name}",
    }
    if call.body.get("stream"):
        options = call.body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return await call.send_events(
            _chunks(base, pieces, finish, usage if include_usage else None)
        )
    content = "".join(pieces)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    message["annotations"] = []
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    completion = {**base, "choices": [choice], "usage": usage}
    return await call.send_json({**completion, "service_tier": "default"})


def _chunks(
    base: dict[str, Any], pieces: list[str], finish: str, usage: dict[str, Any] | None
) -> Iterator[bytes]:
    head = {**base, "object": "chat.completion.chunk"}
    if usage is not None:
        head["usage"] = None  # with include_usage every chunk but the last carries a null usage
    yield sse_data({**head, "choices": [_choice({"role": "assistant", "content": ""}, None)]})
    for piece in pieces:
        yield sse_data({**head, "choices": [_choice({"content": piece}, None)]})
    yield sse_data({**head, "choices": [_choice({}, finish)]})
    if usage is not None:
        yield sse_data({**head, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def _choice(delta: dict[str, str], finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return parts_text(message.get("content"), _TEXT_PARTS)
    return ""


def prompt_estimate(body: dict[str, Any]) -> int:
    """The tokens the quota charges at admission: the words of every message."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 1
    return max(sum(count_words(text) for _, text in _turns(messages)), 1)


def _turns(messages: list[Any]) -> list[tuple[str, str]]:
    """(role, text) of each message: the prompt, as ``usage`` and the prefix cache count it."""
    return [
        (str(message.get("role", "")), parts_text(message.get("content"), _TEXT_PARTS))
        for message in messages
        if isinstance(message, dict)
    ]


def _usage(prompt: int, cached: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
