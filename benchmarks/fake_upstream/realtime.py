"""``GET /v1/realtime`` (and Azure's ``/openai/realtime``): the Realtime API's WebSocket, text only.

On connect the fake sends ``session.created``. ``conversation.item.create`` keeps the item's text
(answered with ``conversation.item.added``, or ``conversation.item.created`` on the beta API);
``response.create`` answers ``response.created``, one text delta per word of
f"{name} says: {text}" (``response.output_text.delta``, or ``response.text.delta`` when the
upgrade carried ``OpenAI-Beta: realtime=v1``), then ``response.done`` with usage counted in
words. ``session.update`` answers ``session.updated``; binary frames are echoed back;
``fake.flood`` (``{"frames": N, "bytes": B}``) sends N text frames of about B bytes each, for
back-pressure tests. Other events are ignored, as a model ignores what it does not act on.

Faults (queued with ``POST /_fake/faults``) act as on HTTP: ``status`` refuses the upgrade,
``drop`` closes the connection instead of upgrading, ``delay_first_byte`` delays the 101,
``chunk_delay`` spaces events; ``cut_after`` drops the connection after N server events, or closes
it with ``close_code``/``close_reason`` when those are set; ``echo_key`` sends an ``error`` event
quoting the credentials the upgrade carried, right after ``session.created``. Each session is
recorded for ``GET /_fake/realtime``: the client's event types, and the code and reason it
closed with.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from benchmarks.fake_upstream.call import before_response, close_connection
from benchmarks.fake_upstream.faults import NO_FAULT, Fault, message_for
from benchmarks.fake_upstream.state import STATE, SessionRecord
from benchmarks.fake_upstream.wire import count_words, new_id, parts_text, split_words

_TEXT_PARTS = ("input_text", "text")
_MAX_MESSAGE = 16 * 1024 * 1024


class _Cut(Exception):
    """The fault's cut happened: the session is over."""


class _Session:
    """One client's conversation: the text it gave, and the events sent so far."""

    def __init__(
        self, ws: web.WebSocketResponse, request: web.Request, record: SessionRecord, fault: Fault
    ) -> None:
        self.ws = ws
        self.request = request
        self.record = record
        self.fault = fault
        self.name = request.app[STATE].config.name
        self.text = ""
        self.sent = 0
        self.ids = itertools.count(1)
        cut = fault.cut_after
        self.cut_after = 1 if cut is None and fault.close_code is not None else cut

    async def send(self, event_type: str, **fields: Any) -> None:
        if self.sent and self.fault.chunk_delay:
            await asyncio.sleep(self.fault.chunk_delay)
        event = {"type": event_type, "event_id": f"event_{next(self.ids)}", **fields}
        await self.ws.send_frame(orjson.dumps(event), WSMsgType.TEXT)
        self.sent += 1
        if self.sent == self.cut_after:
            await self.cut()

    async def cut(self) -> None:
        state = self.request.app[STATE]
        code, reason = self.fault.close_code, self.fault.close_reason
        if code is not None:
            state.end_session(self.record, "fault_close")
            await self.ws.close(code=code, message=reason.encode())
        else:
            state.end_session(self.record, "cut")
            close_connection(self.request)
        raise _Cut

    async def on_event(self, raw: str) -> None:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self.send("error", error=_error("The event is not valid JSON."))
            return
        kind = event.get("type") if isinstance(event, dict) else None
        self.record.events.append(str(kind))
        if kind == "conversation.item.create":
            await self.item_created(event.get("item"))
        elif kind == "response.create":
            await self.respond()
        elif kind == "session.update":
            await self.send("session.updated", session=self.session_object())
        elif kind == "fake.flood":
            await self.flood(event)

    async def item_created(self, item: object) -> None:
        if not isinstance(item, dict):
            await self.send("error", error=_error("'item' must be an object.", "item"))
            return
        self.text = parts_text(item.get("content"), _TEXT_PARTS)
        added = {**item, "id": item.get("id") or new_id("item_"), "status": "completed"}
        kind = "conversation.item.created" if self.record.beta else "conversation.item.added"
        await self.send(kind, previous_item_id=None, item=added)

    async def respond(self) -> None:
        pieces = split_words(f"{self.name} says: {self.text}")
        response_id, item_id = new_id("resp_"), new_id("item_")
        await self.send("response.created", response=_response(response_id, "in_progress"))
        delta = "response.text.delta" if self.record.beta else "response.output_text.delta"
        where = {"response_id": response_id, "item_id": item_id}
        for piece in pieces:
            await self.send(delta, **where, output_index=0, content_index=0, delta=piece)
        done = _response(response_id, "completed")
        text_part = "text" if self.record.beta else "output_text"
        done["output"] = [_message(item_id, [{"type": text_part, "text": "".join(pieces)}])]
        done["usage"] = _usage(max(count_words(self.text), 1), len(pieces))
        await self.send("response.done", response=done)

    async def flood(self, event: dict[str, Any]) -> None:
        frames, size = event.get("frames"), event.get("bytes")
        if not isinstance(frames, int) or not isinstance(size, int):
            await self.send("error", error=_error("fake.flood takes integer frames and bytes."))
            return
        for seq in range(frames):
            await self.send("fake.flood.chunk", seq=seq, pad="x" * size)

    def session_object(self) -> dict[str, Any]:
        session: dict[str, Any] = {
            "id": new_id("sess_"),
            "object": "realtime.session",
            "model": self.record.model,
        }
        if self.record.beta:
            return {**session, "modalities": ["text"]}
        return {**session, "type": "realtime", "output_modalities": ["text"]}


async def session(request: web.Request) -> web.StreamResponse:
    """Upgrade (unless a fault refuses), then converse until either side ends it."""
    state = request.app[STATE]
    fault = state.take_fault() or NO_FAULT
    early = await before_response(request, fault)
    if early is not None:
        return early
    ws = web.WebSocketResponse(protocols=("realtime",), max_msg_size=_MAX_MESSAGE)
    await ws.prepare(request)
    beta = "realtime=v1" in request.headers.get("OpenAI-Beta", "")
    model = request.query.get("model") or request.query.get("deployment") or ""
    record = state.open_session(model, beta=beta)
    talk = _Session(ws, request, record, fault)
    try:
        await talk.send("session.created", session=talk.session_object())
        if fault.echo_key:
            message = message_for(fault, request, "Your credentials were refused.")
            await talk.send("error", error=_error(message))
        await _converse(talk)
    except _Cut:
        pass
    finally:  # if nothing ended it first, the client's connection was lost (or broke a write)
        state.end_session(record, "client_gone")
    return ws


async def _converse(talk: _Session) -> None:
    state = talk.request.app[STATE]
    while True:
        msg = await talk.ws.receive()
        if msg.type is WSMsgType.TEXT:
            await talk.on_event(msg.data)
        elif msg.type is WSMsgType.BINARY:
            talk.record.binary_frames += 1
            await talk.ws.send_bytes(msg.data)
        elif msg.type is WSMsgType.CLOSE:
            state.end_session(talk.record, "client_close", msg.data, msg.extra)
            return
        else:  # CLOSED or ERROR: the client went away without a close frame
            state.end_session(talk.record, "client_gone")
            return


def _response(response_id: str, status: str) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": None,
        "output": [],
        "conversation_id": "conv_fake",
        "output_modalities": ["text"],
        "usage": None,
        "metadata": None,
        "created_at": int(time.time()),
    }


def _message(item_id: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": content,
    }


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {"text_tokens": input_tokens, "audio_tokens": 0},
        "output_token_details": {"text_tokens": output_tokens, "audio_tokens": 0},
    }


def _error(message: str, param: str | None = None) -> dict[str, Any]:
    return {"type": "invalid_request_error", "code": None, "message": message, "param": param}
