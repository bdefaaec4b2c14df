"""The Conversations API: ``/v1/conversations`` and its items, held by this instance only.

Shapes as OpenAI sends them (openai-python's ``Conversation``, ``ConversationDeletedResource``,
``ConversationItemList``): a conversation is ``{"id": "conv_...", "object": "conversation",
"created_at", "metadata"}``; a delete answers ``{"id", "object": "conversation.deleted",
"deleted": true}``; items are listed as a cursor list (``page``); adding items answers the
list of those added; deleting an item answers the conversation. A response that names the
conversation appends its input and output items (see ``responses``).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from benchmarks.fake_upstream.call import Call
from benchmarks.fake_upstream.state import STATE
from benchmarks.fake_upstream.store import Conversation, Store, as_items, page
from benchmarks.fake_upstream.wire import ApiError, new_id

_MAX_ITEMS = 20  # OpenAI: "Initial items to include in the conversation context. You may add
# up to 20 items at a time."


def _store(call: Call) -> Store:
    return call.request.app[STATE].store


def _conversation(call: Call) -> Conversation:
    return _store(call).conversation(call.request.match_info["conversation_id"])


async def create_conversation(call: Call) -> web.StreamResponse:
    conversation_id = new_id("conv_")
    obj = {
        "id": conversation_id,
        "object": "conversation",
        "created_at": int(time.time()),
        "metadata": _metadata(call.body),
    }
    conversation = Conversation(obj, _items(call.body.get("items")))
    _store(call).conversations.put(conversation_id, conversation)
    return await call.send_json(obj)


async def retrieve_conversation(call: Call) -> web.StreamResponse:
    return await call.send_json(_conversation(call).obj)


async def update_conversation(call: Call) -> web.StreamResponse:
    conversation = _conversation(call)
    if "metadata" not in call.body:
        raise ApiError(400, "Missing required parameter: 'metadata'.", param="metadata")
    conversation.obj["metadata"] = _metadata(call.body)
    return await call.send_json(conversation.obj)


async def delete_conversation(call: Call) -> web.StreamResponse:
    conversation_id = call.request.match_info["conversation_id"]
    _conversation(call)  # 404 first
    _store(call).conversations.pop(conversation_id)
    deleted = {"id": conversation_id, "object": "conversation.deleted", "deleted": True}
    return await call.send_json(deleted)


async def list_items(call: Call) -> web.StreamResponse:
    return await call.send_json(page(_conversation(call).items, dict(call.request.query)))


async def create_items(call: Call) -> web.StreamResponse:
    conversation = _conversation(call)
    if not isinstance(call.body.get("items"), list) or not call.body["items"]:
        raise ApiError(400, "'items' must be a non-empty array.", param="items")
    added = _items(call.body["items"])
    conversation.items.extend(added)
    listed = {"object": "list", "data": added, "has_more": False}
    return await call.send_json({**listed, "first_id": added[0]["id"], "last_id": added[-1]["id"]})


async def retrieve_item(call: Call) -> web.StreamResponse:
    return await call.send_json(_conversation(call).item(call.request.match_info["item_id"]))


async def delete_item(call: Call) -> web.StreamResponse:
    conversation = _conversation(call)
    item = conversation.item(call.request.match_info["item_id"])
    conversation.items.remove(item)
    return await call.send_json(conversation.obj)


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ApiError(400, "'metadata' must be an object.", param="metadata")
    return metadata


def _items(raw: object) -> list[dict[str, Any]]:
    """Items as stored: messages get an id and their string content as one text part."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > _MAX_ITEMS:
        raise ApiError(
            400, f"'items' must be an array of at most {_MAX_ITEMS} items.", param="items"
        )
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ApiError(400, "Each item must be an object.", param=f"items[{index}]")
    return as_items(raw)
