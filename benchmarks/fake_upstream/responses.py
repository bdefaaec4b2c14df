"""``POST /v1/responses`` (and Azure's ``/openai/responses``): the Responses API, text only.

The answer is one assistant message with one ``output_text`` part. ``max_output_tokens`` cuts it
and makes the response "incomplete", as OpenAI does. Streams are typed ``event:`` lines with a
``sequence_number`` counting from 0, ending with ``response.completed`` (or
``response.incomplete``); there is no ``[DONE]`` in this API.

State, as one OpenAI account keeps it (see ``store``): a response is stored unless
``store: false``, streamed or not. ``previous_response_id`` continues a stored response (400
``previous_response_not_found`` when this instance does not hold it) and ``conversation``
continues a conversation (404 when unknown), which then gets this turn's items; both make the
earlier turns part of the prompt (its tokens and its cache), and the answer says what it
continued: "alpha says: [continues resp_...] text". ``background: true`` answers ``queued`` at
once and completes later (``stored`` serves retrieve and cancel).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from benchmarks.fake_upstream import account
from benchmarks.fake_upstream.call import Call
from benchmarks.fake_upstream.state import STATE
from benchmarks.fake_upstream.store import (
    TEXT_PARTS,
    Conversation,
    Store,
    StoredResponse,
    as_items,
    message_item,
)
from benchmarks.fake_upstream.wire import (
    ApiError,
    count_words,
    new_id,
    parts_text,
    sse_event,
    truncate,
)

_EXCLUSIVE = (
    "Mutually exclusive parameters: Ensure you are only providing one of:"
    " 'previous_response_id' or 'conversation'."
)


def prompt_estimate(body: dict[str, Any]) -> int:
    """The tokens the quota charges at admission: the words of the request's own input."""
    return max(sum(count_words(text) for _, text in _input_messages(body.get("input"))), 1)


async def create_response(call: Call) -> web.StreamResponse:
    store = call.request.app[STATE].store
    background, stored = bool(call.body.get("background")), call.body.get("store", True)
    if background and not stored:
        raise ApiError(400, "Background mode requires 'store' to be true.", param="background")
    history, continued, conversation = _context(store, call.body)
    turns = history + _input_messages(call.body.get("input"))
    final, pieces = _answer(call, turns, continued)
    items = _input_items(call.body.get("input"))
    if conversation is not None:
        final["conversation"] = {"id": conversation.obj["id"]}
        conversation.items.extend([*items, final["output"][0]])
    if stored:
        record = StoredResponse(final, items, [*turns, ("assistant", "".join(pieces))])
        store.responses.put(final["id"], record)
        if background and not call.body.get("stream"):
            record.final, record.started = final, store.clock()
            record.response = _queued(final)
            return await call.send_json(record.response)
    if call.body.get("stream"):
        return await call.send_events(_events(final, final["output"][0]["id"], pieces))
    return await call.send_json(final)


def _answer(
    call: Call, turns: list[tuple[str, str]], continued: str | None
) -> tuple[dict[str, Any], list[str]]:
    """The finished Response object for this prompt, and its output's pieces."""
    user_texts = [text for role, text in turns if role == "user"]
    said = user_texts[-1] if user_texts else ""
    pieces, cut = truncate(
        call.answer(f"[continues {continued}] {said}" if continued else said),
        call.body.get("max_output_tokens"),
    )
    status = "incomplete" if cut else "completed"
    final = _response(call, status)
    final["output"] = [_message(new_id("msg_"), status, [_text_part("".join(pieces))])]
    prompt, cached = account.usage(call.request, turns, call.estimate, len(pieces))
    final["usage"] = _usage(prompt, cached, len(pieces))
    if cut:
        final["incomplete_details"] = {"reason": "max_output_tokens"}
    return final, pieces


def _context(
    store: Store, body: dict[str, Any]
) -> tuple[list[tuple[str, str]], str | None, Conversation | None]:
    """The turns before this request, the response id it continues, the conversation it joins."""
    previous, named = body.get("previous_response_id"), body.get("conversation")
    if previous is not None and named is not None:
        raise ApiError(400, _EXCLUSIVE, param="conversation")
    if isinstance(previous, str):
        return list(store.previous(previous).history), previous, None
    conversation_id = named.get("id") if isinstance(named, dict) else named
    if isinstance(conversation_id, str):
        conversation = store.conversation(conversation_id)
        return conversation.history(), None, conversation
    return [], None, None


def _queued(final: dict[str, Any]) -> dict[str, Any]:
    """A background response as first answered: queued, nothing produced yet."""
    return {
        **final,
        "status": "queued",
        "background": True,
        "output": [],
        "usage": None,
        "completed_at": None,
        "incomplete_details": None,
    }


def _events(final: dict[str, Any], msg_id: str, pieces: list[str]) -> Iterator[bytes]:
    sequence = itertools.count()

    def event(event_type: str, **fields: Any) -> bytes:
        data = {"type": event_type, "sequence_number": next(sequence), **fields}
        return sse_event(event_type, data)

    pending = {**final, "status": "in_progress", "output": [], "usage": None}
    pending |= {"incomplete_details": None, "completed_at": None}
    where = {"item_id": msg_id, "output_index": 0, "content_index": 0}
    text = "".join(pieces)
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    yield event(
        "response.output_item.added", output_index=0, item=_message(msg_id, "in_progress", [])
    )
    yield event("response.content_part.added", **where, part=_text_part(""))
    for piece in pieces:
        yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
    yield event("response.output_text.done", **where, text=text, logprobs=[])
    yield event("response.content_part.done", **where, part=_text_part(text))
    yield event("response.output_item.done", output_index=0, item=final["output"][0])
    yield event(f"response.{final['status']}", response=final)


def _input_messages(items: object) -> list[tuple[str, str]]:
    """(role, text) of each input message; a plain string is one user message."""
    if isinstance(items, str):
        return [("user", items)]
    if not isinstance(items, list):
        return []
    return [
        (str(item.get("role", "")), parts_text(item.get("content"), TEXT_PARTS))
        for item in items
        if isinstance(item, dict) and item.get("type", "message") == "message"
    ]


def _input_items(items: object) -> list[dict[str, Any]]:
    """The input as stored items; a plain string is one user message."""
    if isinstance(items, str):
        return [message_item("user", [{"type": "input_text", "text": items}])]
    return as_items(items) if isinstance(items, list) else []


def _response(call: Call, status: str) -> dict[str, Any]:
    """The top-level fields of OpenAI's Response object, echoing the request's settings."""
    body = call.body
    now = int(time.time())
    return {
        "id": new_id("resp_"),
        "object": "response",
        "created_at": now,
        "completed_at": now if status == "completed" else None,
        "status": status,
        "background": bool(body.get("background")),
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": call.model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _message(msg_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _usage(input_tokens: int, cached: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
