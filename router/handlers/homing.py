"""``POST /v1/responses`` and its homes: a follow-up goes to the account holding what it
continues, and what the answer creates is recorded before the client can follow up on it.

A follow-up names a stored response (``previous_response_id``) or a conversation
(``conversation``, a string or ``{"id": ...}``). Its home must be known and owned by the calling
key, else the client gets OpenAI's own answer for an id the account does not hold (400
``previous_response_not_found``, 404 for a conversation). The request then goes to the same
account only: a backend of the requested model with the home's URL and credentials
(:meth:`router.routing.RouteTable.homed`); an ejected home answers 503, never another account.

The answer's id is recorded before it reaches the client: a JSON answer once read whole, a
stream once its first event (``response.created``, which carries the id) has arrived and before
that event is relayed. A client's follow-up can never overtake the record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from router.appkeys import HOMES, ROUTES
from router.auth import Principal
from router.auth.keystore import store_errors
from router.context import RequestContext
from router.errors import InvalidRequest, NotFound, ServiceUnavailable
from router.homes import Home, valid_id
from router.homes.record import Cached
from router.upstream.http import UpstreamResponse
from router.upstream.reply import Reply
from router.upstream.route import Route

logger = logging.getLogger("switchyard")
_FIRST_EVENT_LIMIT = 64 * 1024  # response.created is a few KiB; past this, give up looking
_EVENT_END = (b"\n\n", b"\r\n\r\n")


class StoredNotFound(NotFound):
    """OpenAI's 404 for an id the account does not hold: ``code`` null, as OpenAI sends it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = None


def response_not_found(response_id: str) -> StoredNotFound:
    return StoredNotFound(f"Response with id '{response_id}' not found.")


def conversation_not_found(conversation_id: str) -> StoredNotFound:
    return StoredNotFound(f"Conversation with id '{conversation_id}' not found.")


def previous_not_found(response_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


async def owned_home(homes: Cached, object_id: object, principal: Principal) -> Home | None:
    """The home of ``object_id`` if the key owns it; None for an unknown, foreign or malformed
    id (all three answer the same: a key learns nothing of another key's ids)."""
    if not isinstance(object_id, str) or not valid_id(object_id):
        return None
    try:
        home = await homes.get(object_id)
    except store_errors() as exc:  # an outage, not a bug: one line, no traceback, a 503
        logger.warning("home store unavailable", extra={"fields": {"error": type(exc).__name__}})
        raise ServiceUnavailable(
            "Stored responses cannot be looked up right now; please retry.",
            code="homes_unavailable",
            headers={"retry-after": "1"},
        ) from None
    return home if home is not None and home.owner == principal.key_id else None


async def plan(
    app: web.Application,
    payload: Mapping[str, Any],
    principal: Principal,
    model: str,
    chain: tuple[Route, ...],
) -> tuple[tuple[Route, ...], Keeper | None]:
    """The routes of a new response (the home's only, for a follow-up) and what records it."""
    homes = app[HOMES]
    stored = payload.get("store", True) is not False
    keeper = Keeper(homes, principal.key_id) if stored else None
    previous, named = payload.get("previous_response_id"), payload.get("conversation")
    if previous is None and named is None:
        return chain, keeper
    if previous is not None:
        home = await owned_home(homes, previous, principal)
        missing: Exception = previous_not_found(str(previous))
    else:
        conversation = named.get("id") if isinstance(named, dict) else named
        home = await owned_home(homes, conversation, principal)
        missing = conversation_not_found(str(conversation))
    route = app[ROUTES].homed("responses", model, home) if home is not None else None
    if route is None:
        raise missing
    return (route,), keeper


class Keeper:
    """Records the home of the response (or conversation) an answer creates."""

    __slots__ = ("homes", "owner")

    def __init__(self, homes: Cached, owner: str) -> None:
        self.homes = homes
        self.owner = owner

    async def __call__(self, reply: Reply, ctx: RequestContext) -> None:
        if reply.status != 200 or ctx.route_model is None:
            return
        if reply.streaming:
            object_id = await _first_event_id(reply)
        else:
            object_id = _id_of(reply.body)
        if object_id is None or not valid_id(object_id):
            return
        try:
            await self.homes.put(object_id, Home(ctx.route_model, reply.backend.name, self.owner))
        except store_errors() as exc:
            # The answer exists upstream: the client gets it; only a follow-up on this id will
            # find no home (400/404, as for an unknown id). Failing it would orphan it instead.
            fields = {"error": type(exc).__name__, "request_id": ctx.request_id}
            logger.warning("home not recorded: store unavailable", extra={"fields": fields})


def _id_of(body: bytes | None) -> str | None:
    """The top-level ``id`` of a JSON answer (a Response, a Conversation)."""
    try:
        data = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        return None
    object_id = data.get("id") if isinstance(data, dict) else None
    return object_id if isinstance(object_id, str) else None


async def _first_event_id(reply: Reply) -> str | None:
    """Read the stream up to its first whole event and return ``response.id`` from it; what was
    read is handed back to the relay unchanged (:class:`_Replay`)."""
    buffered = b""
    failure: BaseException | None = None
    try:
        while len(buffered) < _FIRST_EVENT_LIMIT and not _has_event_end(buffered):
            chunk = await reply.response.next_chunk()
            if not chunk:
                break
            buffered += chunk
    except Exception as exc:  # the relay reports it, after the bytes that came first
        failure = exc
    reply.response = _Replay(reply.response, buffered, failure)
    return _created_id(buffered)


def _has_event_end(data: bytes) -> bool:
    return any(end in data for end in _EVENT_END)


def _created_id(data: bytes) -> str | None:
    """The response id of a leading ``response.created`` event (OpenAI's first event)."""
    end = min((i for e in _EVENT_END if (i := data.find(e)) >= 0), default=-1)
    if end < 0:
        return None
    lines = data[:end].splitlines()
    payload = b"\n".join(line[5:].lstrip() for line in lines if line.startswith(b"data:"))
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("type") != "response.created":
        return None
    response = event.get("response")
    object_id = response.get("id") if isinstance(response, dict) else None
    return object_id if isinstance(object_id, str) else None


class _Replay:
    """An upstream response whose first bytes were read ahead: they come back first, unchanged
    (chunk boundaries of what follows kept), then the rest; a failure met while reading ahead
    is raised after them."""

    __slots__ = ("_failure", "_first", "_response")

    def __init__(
        self, response: UpstreamResponse, first: bytes, failure: BaseException | None
    ) -> None:
        self._response = response
        self._first = first
        self._failure = failure

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def read(self) -> bytes:
        first, self._first = self._first, b""
        return first + await self.next_rest_whole()

    async def next_rest_whole(self) -> bytes:
        if self._failure is not None:
            raise self._failure
        return await self._response.read()

    async def next_chunk(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        return await self._response.next_chunk()

    @property
    def ready(self) -> bool:
        return bool(self._first) or self._failure is not None or self._response.ready

    @property
    def drained(self) -> bool:
        return not self._first and self._failure is None and self._response.drained

    def close(self) -> None:
        self._response.close()
