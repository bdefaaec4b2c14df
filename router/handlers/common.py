"""What every OpenAI endpoint does first: authenticate, read and check the body."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from router.appkeys import AUTH, CONFIG
from router.auth import Principal, bearer_token
from router.auth.keys import digest
from router.auth.keystore import store_errors
from router.auth.principals import Authenticator
from router.errors import (
    InvalidRequest,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    wrong_type,
)

logger = logging.getLogger("switchyard")

_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_BAD_KEY = "Incorrect API key provided. You can find your API keys in Settings → API Keys."
_BAD_JSON = (
    "We could not parse the JSON body of your request. The API expects a JSON payload, "
    "but what was sent was not valid JSON."
)


def json_response(data: object, status: int = 200) -> web.Response:
    """A JSON answer, encoded with orjson (compact, as OpenAI's own)."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def authenticate(request: web.Request, auth: Authenticator | None = None) -> Principal:
    """The caller's principal, or 401. The message never repeats the presented key.

    ``auth`` is the app's where the caller holds it already (``request.app`` walks the match
    info). A key of the config is found by its digest here; any other goes through
    :func:`principal_for`.
    """
    if auth is None:
        auth = request.app[AUTH]
    token = bearer_token(request.headers.get("Authorization"))
    principal = auth.ring.by_digest.get(digest(token)) if token is not None else None
    return principal if principal is not None else await principal_for(auth, token)


async def principal_for(auth: Authenticator, token: str | None) -> Principal:
    """The principal of a key however it was presented, or 401 (503 if keys cannot be read)."""
    if token is None:
        raise Unauthorized(_NO_KEY)
    if not (token.isascii() or is_text(token)):  # not UTF-8: no key of ours, no store sees it
        raise Unauthorized(_BAD_KEY)
    try:
        principal = await auth.principal(token)
    except store_errors() as exc:  # the key store is unreachable and this key is not cached
        # An outage, not a bug: one line naming the error, no traceback (it may quote a URL).
        logger.warning("key store unavailable", extra={"fields": {"error": type(exc).__name__}})
        raise ServiceUnavailable(
            "API keys cannot be checked right now; please retry.",
            code="keys_unavailable",
            headers={"retry-after": "1"},
        ) from None
    if principal is None:
        raise Unauthorized(_BAD_KEY)
    return principal


def is_text(value: str) -> bool:
    """Whether a header value was valid UTF-8. aiohttp decodes header bytes with
    ``surrogateescape``: a byte that is not UTF-8 becomes a lone surrogate, which no encoder
    (hashing, JSON, an upstream request) accepts."""
    return value.isascii() or not any("\udc80" <= char <= "\udcff" for char in value)


def text_header(request: web.Request, name: str) -> str | None:
    """A client header's value if it is text; None if absent or not valid UTF-8."""
    value = request.headers.get(name)
    return value if value is not None and is_text(value) else None


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The whole body, at most ``limit`` bytes (``server.max_body_bytes`` if not given)."""
    if limit is None:
        limit = request.app[CONFIG].server.max_body_bytes
    content = request.content
    if content.is_eof():  # the whole body came with the head (the common case): take it
        body = content.read_nowait()  # raises the body's error, as read() would
        if len(body) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        return body
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.") from None


def parse_payload(body: bytes) -> dict[str, Any]:
    """The body as a JSON object: the one parse of the request (orjson)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(_BAD_JSON) from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return payload


def parse_request(body: bytes) -> tuple[dict[str, Any], str, bool]:
    """A proxied request's body: the payload, its ``model`` and its ``stream`` flag, checked
    (the usual shapes inline, the rest and the errors by :func:`require_model` and
    :func:`check_stream`)."""
    payload = parse_payload(body)
    model = payload.get("model")
    if type(model) is not str or not model:
        model = require_model(payload)
    stream = payload.get("stream", False)
    if type(stream) is not bool:
        stream = check_stream(payload)
    return payload, model, stream


def require_model(payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if model is None or model == "":
        raise InvalidRequest(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    if not isinstance(model, str):
        raise wrong_type("model", "a string", model)
    return model


def check_stream(payload: dict[str, Any]) -> bool:
    stream = payload.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise wrong_type("stream", "a boolean", stream)
    return stream
