"""Stored responses and conversations by id: each request goes to the id's home account only.

Routes, as OpenAI's: ``GET``/``DELETE /v1/responses/{id}``, ``POST /v1/responses/{id}/cancel``,
``GET /v1/responses/{id}/input_items``; ``POST /v1/conversations`` (create),
``GET``/``POST``/``DELETE /v1/conversations/{id}`` (retrieve, update, delete), ``GET``/``POST
/v1/conversations/{id}/items`` and ``GET``/``DELETE /v1/conversations/{id}/items/{item_id}``.

The client's body, query string (``after``, ``limit``, ``order``, ``include``, ``stream``...)
and the upstream's answer pass through unchanged. An id must be letters, digits, ``_`` and
``-`` (anything else never reaches an upstream URL: 400); an id whose home is unknown or owned
by another key gets OpenAI's 404. A new conversation goes to a backend of the first model that
serves responses and the key may use (the request names no model), balanced by its pool.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine

from aiohttp import web
from yarl import URL

from router.appkeys import FORWARDER, HOMES, LIMITER, METRICS, ROUTES
from router.auth import Principal
from router.auth.keystore import store_errors
from router.context import CONTEXT
from router.edge import edge
from router.errors import InvalidRequest, ModelNotFound
from router.handlers.admission import admit, finish
from router.handlers.common import authenticate, read_body
from router.handlers.homing import (
    Keeper,
    conversation_not_found,
    owned_home,
    response_not_found,
)
from router.handlers.proxy import forward_headers
from router.homes import valid_id
from router.upstream.backend import Backend
from router.upstream.forward import PathAttempt
from router.upstream.relay import relay
from router.upstream.route import Route

NotFoundFor = Callable[[str], Exception]
_RESPONSE = ("response_id", "responses", response_not_found)
_CONVERSATION = ("conversation_id", "conversations", conversation_not_found)


def object_url(base: URL, collection: str, segments: tuple[str, ...], query: str) -> str:
    """``{base's directory}/{collection}/{segments...}?{base's query&client's query}``: the
    responses endpoint's URL, turned into a stored object's (Azure keeps its api-version)."""
    directory = base.raw_path.rsplit("/", 1)[0]
    path = "/".join((directory, collection, *segments))
    joined = "&".join(part for part in (base.raw_query_string, query) if part)
    origin = str(base.origin())
    return f"{origin}{path}?{joined}" if joined else f"{origin}{path}"


def _query(request: web.Request) -> str:
    """The client's query string as sent (percent-encoded), or 400 if it is not plain ASCII."""
    raw = request.rel_url.raw_query_string
    if not raw.isascii() or any(c in raw for c in " \t\r\n#"):
        raise InvalidRequest("The query string must be percent-encoded ASCII.")
    return raw


def _object_id(request: web.Request, name: str) -> str:
    object_id = request.match_info[name]
    if not valid_id(object_id):
        raise InvalidRequest(
            f"Invalid '{name}': expected letters, digits, '_' or '-' (at most 200).",
            param=name,
            code="invalid_id",
        )
    return object_id


async def _homed(
    request: web.Request,
    kind: tuple[str, str, NotFoundFor],
    method: str,
    suffix: tuple[str, ...] = (),
    *,
    forget: bool = False,
) -> web.StreamResponse:
    """Relay ``method`` on the object named in the path (and ``suffix`` below it) to its home."""
    name, collection, not_found = kind
    ctx = request[CONTEXT]
    principal = await authenticate(request)
    ctx.key_id = principal.key_id
    object_id = _object_id(request, name)
    for segment in suffix:
        if not valid_id(segment):
            raise InvalidRequest(
                "Invalid 'item_id': expected letters, digits, '_' or '-' (at most 200).",
                param="item_id",
                code="invalid_id",
            )
    query, body = _query(request), await read_body(request)
    home = await owned_home(request.app[HOMES], object_id, principal)
    route = request.app[ROUTES].pinned("responses", home.model, home.backend) if home else None
    if route is None:
        raise not_found(object_id)
    ctx.model = route.model
    segments = (object_id, *suffix)

    def url_of(backend: Backend) -> str:
        return object_url(backend.urls["responses"], collection, segments, query)

    response = await _send(request, principal, (route,), PathAttempt(method, url_of, body, {}))
    if forget and response.status == 200:
        with contextlib.suppress(*store_errors()):  # else it expires; the home answers 404
            await request.app[HOMES].forget(object_id)
    return response


async def _send(
    request: web.Request,
    principal: Principal,
    chain: tuple[Route, ...],
    attempt: PathAttempt,
    keeper: Keeper | None = None,
) -> web.StreamResponse:
    """Admit against the key's request limits, forward, record what it made, relay."""
    ctx = request[CONTEXT]
    attempt.headers = forward_headers(request, ctx.request_id)
    if not attempt.body:
        attempt.headers.pop("Content-Type", None)
    charge = None
    limiter = request.app[LIMITER]
    if not principal.limits.empty:
        charge = await admit(limiter, principal, 1, ctx.request_id, request.app[METRICS])
    try:
        reply = await request.app[FORWARDER].forward(chain, attempt, ctx)
        try:
            if keeper is not None:
                await keeper(reply, ctx)
            ctx.upstream_first_byte = reply.first_byte
            ctx.upstream_request_id = reply.response.headers.get("x-request-id")
            headers = charge.headers if charge is not None else None
            return await relay(request, reply, ctx, "responses", headers=headers)
        finally:
            reply.close()
    finally:
        if charge is not None:
            await finish(limiter, charge)


async def create_conversation(request: web.Request) -> web.StreamResponse:
    ctx = request[CONTEXT]
    principal = await authenticate(request)
    ctx.key_id = principal.key_id
    query, body = _query(request), await read_body(request)
    route = request.app[ROUTES].first("responses", principal)
    if route is None:
        raise ModelNotFound("*")
    ctx.model = route.model

    def url_of(backend: Backend) -> str:
        return object_url(backend.urls["responses"], "conversations", (), query)

    keeper = Keeper(request.app[HOMES], principal.key_id)
    attempt = PathAttempt("POST", url_of, body, {})
    return await _send(request, principal, (route,), attempt, keeper)


def _route(
    kind: tuple[str, str, NotFoundFor], method: str, *suffix: str, forget: bool = False
) -> Callable[[web.Request], Coroutine[None, None, web.StreamResponse]]:
    """A handler for ``method`` on one kind of stored object; ``{item_id}`` in ``suffix`` is
    read from the path."""

    def handle(request: web.Request) -> Coroutine[None, None, web.StreamResponse]:
        parts = tuple(request.match_info[s[1:-1]] if s[0] == "{" else s for s in suffix)
        return _homed(request, kind, method, parts, forget=forget)

    return handle


def add_routes(app: web.Application) -> None:
    record = app[METRICS].request_done
    responses = "/v1/responses/{response_id}"
    conversations = "/v1/conversations/{conversation_id}"
    items = f"{conversations}/items"
    table = (
        ("GET", responses, _route(_RESPONSE, "GET"), "responses"),
        ("DELETE", responses, _route(_RESPONSE, "DELETE", forget=True), "responses"),
        ("POST", f"{responses}/cancel", _route(_RESPONSE, "POST", "cancel"), "responses"),
        ("GET", f"{responses}/input_items", _route(_RESPONSE, "GET", "input_items"), "responses"),
        ("POST", "/v1/conversations", create_conversation, "conversations"),
        ("GET", conversations, _route(_CONVERSATION, "GET"), "conversations"),
        ("POST", conversations, _route(_CONVERSATION, "POST"), "conversations"),
        ("DELETE", conversations, _route(_CONVERSATION, "DELETE", forget=True), "conversations"),
        ("GET", items, _route(_CONVERSATION, "GET", "items"), "conversations"),
        ("POST", items, _route(_CONVERSATION, "POST", "items"), "conversations"),
        (
            "GET",
            f"{items}/{{item_id}}",
            _route(_CONVERSATION, "GET", "items", "{item_id}"),
            "conversations",
        ),
        (
            "DELETE",
            f"{items}/{{item_id}}",
            _route(_CONVERSATION, "DELETE", "items", "{item_id}"),
            "conversations",
        ),
    )
    for method, path, handler, label in table:
        app.router.add_route(method, path, edge(handler, label, record))
