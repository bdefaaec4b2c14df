"""Reading token usage out of a relayed stream, without re-encoding what passes through.

Chat streams report usage in a last chunk with ``"choices": []`` when ``include_usage`` is set;
the router asks for it when the client did not (to settle the key's tokens) and then removes
that chunk, so the client sees the stream it asked for. Responses streams report usage inside
their final ``response.completed`` (or ``incomplete``/``failed``) event. Only chunks holding
``"usage":{`` are looked into, so other chunks cost one substring search.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.config import Endpoint
from router.usage import total_tokens

_MARK = b'"usage":{'


class UsageTap:
    __slots__ = ("_endpoint", "_strip", "total")

    def __init__(self, endpoint: Endpoint, *, strip: bool) -> None:
        self._endpoint = endpoint
        self._strip = strip
        self.total: int | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Whole SSE events in; the events to forward out (the usage chunk dropped if asked)."""
        if _MARK not in chunk:
            return chunk
        kept = []
        for event in chunk.split(b"\n\n"):
            if _MARK in event and self._read(event) and self._strip:
                continue
            kept.append(event)
        return b"\n\n".join(kept)

    def _read(self, event: bytes) -> bool:
        """Take the usage from one event; True if it was the chat usage-only chunk."""
        data = _data_of(event)
        if not isinstance(data, dict):
            return False
        if self._endpoint == "responses":
            response = data.get("response")
            if isinstance(response, dict):
                self.total = total_tokens(response.get("usage")) or self.total
            return False
        total = total_tokens(data.get("usage"))
        if total is None:
            return False
        self.total = total
        return data.get("choices") == []


def _data_of(event: bytes) -> Any:
    lines = [line[5:].lstrip() for line in event.splitlines() if line.startswith(b"data:")]
    try:
        return orjson.loads(b"\n".join(lines))
    except orjson.JSONDecodeError:
        return None
