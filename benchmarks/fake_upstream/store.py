"""What one fake account holds: stored responses and conversations, as OpenAI keeps them.

Both live in this instance only, as they live in one provider account: another fake (another
account) answers 404, or 400 ``previous_response_not_found`` for a follow-up. Both are bounded
(least recently stored first out), so a benchmark that stores millions of responses stays small.

A background response (``background: true``) is stored ``queued``; it reads ``in_progress``
after a third of ``background_seconds`` and ``completed`` (with its output) once they have
passed, computed when read, so no task is left running. ``cancel`` freezes it as ``cancelled``.
The errors use OpenAI's wording.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from benchmarks.fake_upstream.wire import ApiError, new_id, parts_text

T = TypeVar("T")
TEXT_PARTS = ("input_text", "text", "output_text")

TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})


def not_found(kind: str, object_id: str) -> ApiError:
    """OpenAI's 404 for an id this account does not hold."""
    return ApiError(404, f"{kind} with id '{object_id}' not found.")


def message_item(role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    """An input or conversation item: a message with an id of its own, as OpenAI lists them."""
    return {
        "id": new_id("msg_"),
        "type": "message",
        "status": "completed",
        "role": role,
        "content": content,
    }


def as_items(raw: list[Any]) -> list[dict[str, Any]]:
    """Input items as stored (``input_items``, conversation items): each gets an id, and a
    message's string content becomes one text part, as OpenAI lists them back."""
    items = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        if item.get("type", "message") != "message":
            items.append({"id": new_id("item_"), **item})
            continue
        role, content = str(item.get("role", "user")), item.get("content")
        if isinstance(content, str):
            kind = "output_text" if role == "assistant" else "input_text"
            content = [{"type": kind, "text": content}]
        items.append(message_item(role, content if isinstance(content, list) else []))
    return items


@dataclass(slots=True)
class StoredResponse:
    """A response as stored: the object, its own input items and the turns before it."""

    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    history: list[tuple[str, str]]  # (role, text) of every turn up to and including this one
    final: dict[str, Any] | None = None  # a background response's object once it completes
    started: float = 0.0

    def current(self, now: float, background_seconds: float) -> dict[str, Any]:
        """The response as it reads now; a background one moves on with the clock."""
        if self.final is None or self.response["status"] in TERMINAL:
            return self.response
        elapsed = now - self.started
        if elapsed >= background_seconds:
            self.response = self.final
        elif elapsed >= background_seconds / 3:
            self.response = {**self.response, "status": "in_progress"}
        return self.response


class Bounded(Generic[T]):
    """A dict that forgets its oldest entries past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[str, T] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: str, value: T) -> None:
        self._items[key] = value
        while len(self._items) > max(self.limit, 1):
            self._items.popitem(last=False)

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def pop(self, key: str) -> T | None:
        return self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()


@dataclass(slots=True)
class Conversation:
    """A conversation: its object and its items in order."""

    obj: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)

    def item(self, item_id: str) -> dict[str, Any]:
        for item in self.items:
            if item.get("id") == item_id:
                return item
        raise not_found("Item", item_id)

    def history(self) -> list[tuple[str, str]]:
        return [
            (str(item.get("role", "")), parts_text(item.get("content"), TEXT_PARTS))
            for item in self.items
            if item.get("type") == "message"
        ]


class Store:
    """Stored responses and conversations of one instance."""

    def __init__(
        self, limit: int, background_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.responses: Bounded[StoredResponse] = Bounded(limit)
        self.conversations: Bounded[Conversation] = Bounded(limit)
        self.background_seconds = background_seconds
        self.clock = clock

    def __repr__(self) -> str:
        return (
            f"<Store [{len(self.responses)} responses, {len(self.conversations)} conversations,"
            f" background {self.background_seconds:g}s]>"
        )

    def response(self, response_id: str) -> StoredResponse:
        stored = self.responses.get(response_id)
        if stored is None:
            raise not_found("Response", response_id)
        stored.current(self.clock(), self.background_seconds)
        return stored

    def previous(self, response_id: str) -> StoredResponse:
        stored = self.responses.get(response_id)
        if stored is None:
            raise ApiError(
                400,
                f"Previous response with id '{response_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return stored

    def conversation(self, conversation_id: str) -> Conversation:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            raise not_found("Conversation", conversation_id)
        return conversation

    def clear(self) -> None:
        self.responses.clear()
        self.conversations.clear()

    def stats(self) -> dict[str, int]:
        return {
            "stored_responses": len(self.responses),
            "conversations": len(self.conversations),
        }


def page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """OpenAI's cursor list: ``order`` (default desc), ``after`` (an item id), ``limit`` (1-100,
    default 20); ``first_id``, ``last_id`` and ``has_more`` as the API returns them."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError(400, "Invalid value for 'order': expected 'asc' or 'desc'.", param="order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise ApiError(
            400, "Invalid value for 'limit': expected an integer.", param="limit"
        ) from None
    if not 1 <= limit <= 100:
        raise ApiError(400, "Invalid 'limit': must be between 1 and 100.", param="limit")
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise ApiError(400, f"No item with id '{after}' to list after.", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }
