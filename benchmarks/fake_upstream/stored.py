"""Stored responses by id: ``GET``, ``DELETE``, ``POST .../cancel`` and ``GET .../input_items``.

Shapes as OpenAI sends them: the Response object; ``{"id", "object": "response", "deleted":
true}`` for a delete; a cursor list (``page``) of the response's own input items. An id this
instance does not hold is OpenAI's 404; cancelling a response that was not created with
``background: true`` is OpenAI's 400. Cancelling a background response that already finished
answers it unchanged.
"""

from __future__ import annotations

from aiohttp import web

from benchmarks.fake_upstream.call import Call
from benchmarks.fake_upstream.state import STATE
from benchmarks.fake_upstream.store import TERMINAL, StoredResponse, not_found, page
from benchmarks.fake_upstream.wire import ApiError

_NOT_BACKGROUND = "Only responses created with background=true can be cancelled."


def _stored(call: Call) -> StoredResponse:
    return call.request.app[STATE].store.response(call.request.match_info["response_id"])


async def retrieve_response(call: Call) -> web.StreamResponse:
    return await call.send_json(_stored(call).response)


async def delete_response(call: Call) -> web.StreamResponse:
    response_id = call.request.match_info["response_id"]
    if call.request.app[STATE].store.responses.pop(response_id) is None:
        raise not_found("Response", response_id)
    return await call.send_json({"id": response_id, "object": "response", "deleted": True})


async def cancel_response(call: Call) -> web.StreamResponse:
    stored = _stored(call)
    if not stored.response.get("background"):
        raise ApiError(400, _NOT_BACKGROUND)
    if stored.response["status"] not in TERMINAL:
        stored.response = {**stored.response, "status": "cancelled"}
    return await call.send_json(stored.response)


async def list_input_items(call: Call) -> web.StreamResponse:
    return await call.send_json(page(_stored(call).input_items, dict(call.request.query)))
