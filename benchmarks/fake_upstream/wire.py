"""OpenAI wire helpers: error bodies, JSON and SSE encoding, the fake's word model.

Every error this fake sends has OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``, because the router and the SDK both key on
it. Words are whitespace-separated pieces; the fake counts them as tokens so that tests can
predict ``usage`` exactly.
"""

from __future__ import annotations

import os
import re
from typing import Any

import orjson
from aiohttp import web

JSON_TYPE = "application/json"
_WORD = re.compile(r"\S+\s*")


class ApiError(Exception):
    """An OpenAI-style error answer; raised anywhere, rendered once by the middleware."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def response(self) -> web.Response:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return json_response({"error": error}, status=self.status, headers=self.headers)


def json_response(
    obj: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(obj), status=status, content_type=JSON_TYPE, headers=headers
    )


def sse_data(obj: object) -> bytes:
    """One Chat Completions event: ``data: {json}`` and a blank line."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def sse_event(event_type: str, obj: object) -> bytes:
    """One Responses API event: an ``event:`` line names the type, as OpenAI sends it."""
    return b"event: " + event_type.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def split_words(text: str) -> list[str]:
    """Pieces that join back to ``text``: each word keeps the whitespace that follows it."""
    return _WORD.findall(text)


def numbered_words(count: int) -> list[str]:
    """``fake.words: N`` answers "w1 w2 ... wN"; the pieces carry their trailing space."""
    return [f"w{i} " if i < count else f"w{i}" for i in range(1, count + 1)]


def truncate(pieces: list[str], limit: object) -> tuple[list[str], bool]:
    """Cut to ``limit`` words as ``max_tokens`` does; True when something was cut."""
    if not isinstance(limit, int) or isinstance(limit, bool) or len(pieces) <= limit:
        return pieces, False
    kept = pieces[: max(limit, 0)]
    if kept:
        kept[-1] = kept[-1].rstrip()
    return kept, True


def count_words(text: str) -> int:
    return len(text.split())


def parts_text(content: Any, part_types: tuple[str, ...]) -> str:
    """Text of a message ``content``: a string, or a list of typed parts joined by spaces."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") in part_types
        and isinstance(part.get("text"), str)
    ]
    return " ".join(texts)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object (empty body: ``{}``); anything else is OpenAI's 400."""
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise ApiError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body
