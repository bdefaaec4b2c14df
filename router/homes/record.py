"""A home record, the store contract, and the bounded cache every store keeps in front."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import orjson

# OpenAI's ids are ``resp_``/``conv_``/``msg_`` and hex; vLLM's and others' add dashes. Anything
# else (a slash, a dot, a percent, a control byte) never reaches a URL path upstream.
_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")


def valid_id(object_id: str) -> bool:
    """Whether ``object_id`` may be put in an upstream URL path as it is."""
    return _ID.fullmatch(object_id) is not None


@dataclass(frozen=True, slots=True)
class Home:
    """The backend (``backend`` of ``model``'s pool) holding an object, and its owner key id.

    The owner is the key's id, never its secret: a rotated key keeps its id, so the new secret
    continues the conversation."""

    model: str
    backend: str
    owner: str

    def to_json(self) -> bytes:
        return orjson.dumps({"m": self.model, "b": self.backend, "k": self.owner})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Home | None:
        """The record, or None for anything unreadable (a foreign value under our key)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        model, backend, owner = data.get("m"), data.get("b"), data.get("k")
        if not (isinstance(model, str) and isinstance(backend, str) and isinstance(owner, str)):
            return None
        return cls(model, backend, owner)


class HomeStore(Protocol):
    """Homes by object id, shared by every router process that uses the same store."""

    async def get(self, object_id: str) -> Home | None:
        """The home, or None if unknown (never recorded, expired or forgotten)."""

    async def put(self, object_id: str, home: Home) -> None:
        """Record the home for the store's TTL (replacing any earlier record)."""

    async def forget(self, object_id: str) -> None:
        """Drop the record (the object was deleted)."""

    async def close(self) -> None:
        """Release connections."""


CACHE_SIZE = 65_536
"""Homes kept in process. A home never changes once recorded (an id is made once, in one
account, by one key), so a cached copy can only be stale after a delete, when the home answers
404 itself: a cache needs no invalidation, only a bound."""


class Cached:
    """A store behind a bounded in-process cache (cleared whole when full: no LRU bookkeeping
    per request)."""

    def __init__(self, store: HomeStore, size: int = CACHE_SIZE) -> None:
        self.store = store
        self._size = size
        self._homes: dict[str, Home] = {}

    async def get(self, object_id: str) -> Home | None:
        home = self._homes.get(object_id)
        if home is None:
            home = await self.store.get(object_id)
            if home is not None:
                self._keep(object_id, home)
        return home

    async def put(self, object_id: str, home: Home) -> None:
        await self.store.put(object_id, home)
        self._keep(object_id, home)

    async def forget(self, object_id: str) -> None:
        self._homes.pop(object_id, None)
        await self.store.forget(object_id)

    async def close(self) -> None:
        await self.store.close()

    def _keep(self, object_id: str, home: Home) -> None:
        if len(self._homes) >= self._size:
            self._homes.clear()
        self._homes[object_id] = home

    def __repr__(self) -> str:
        return f"<Cached {self.store!r} [{len(self._homes)} cached]>"
