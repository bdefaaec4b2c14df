"""The admin API: ``/admin/keys`` creates, lists, rotates, edits and revokes stored API keys.

Authorised by the config's ``admin.key`` alone (``Authorization: Bearer …``); a client key is
never an admin key. Without an admin key configured the API does not exist: every ``/admin``
URL answers 404, whatever the method, so the surface cannot be probed. Every answer, errors
included, is ``Cache-Control: no-store``: two of them carry a secret, shown that once.

Writes go through the app's :class:`KeyService`, so this process forgets the old record at
once and every other process sharing the store within a second. A store that cannot be reached
is a 503 with ``retry-after``, as on the request path.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from typing import Any

from aiohttp import web

from router.appkeys import AUTH, CONFIG
from router.auth import bearer_token
from router.auth.key_fields import grace_seconds, key_fields
from router.auth.keyformat import is_key_id
from router.auth.keystore import store_errors
from router.auth.records import KeyRecord
from router.auth.service import KeyService
from router.edge import Handler, edge
from router.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RouterError,
    ServiceUnavailable,
    Unauthorized,
)
from router.handlers.common import json_response, parse_payload, read_body
from router.logs import log_event

logger = logging.getLogger("switchyard")

NO_STORE = {"Cache-Control": "no-store"}
_OFF = "The admin API is off: no admin key is configured (set admin.key in the config)."
_NO_KEY = "The admin API needs the admin key in an Authorization header (Bearer ADMIN_KEY)."
_BAD_KEY = "Incorrect admin key provided."


def admin_only(handler: Handler) -> Handler:
    """Check the admin key before ``handler`` runs; mark every answer ``no-store``."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            _authorise(request)
            response = await handler(request)
        except RouterError as exc:
            exc.headers = {**exc.headers, **NO_STORE}
            raise
        except store_errors() as exc:  # as the request path answers it: retryable, not a bug
            fields = {"error": type(exc).__name__}  # one line, no traceback: an outage, not a bug
            logger.warning("key store unavailable", extra={"fields": fields})
            raise ServiceUnavailable(
                "The key store cannot be reached right now; please retry.",
                code="keys_unavailable",
                headers={**NO_STORE, "retry-after": "1"},
            ) from exc
        response.headers.update(NO_STORE)
        return response

    return guarded


def _authorise(request: web.Request) -> None:
    configured = request.app[CONFIG].admin.key
    if configured is None:
        raise NotFound(_OFF, code="admin_disabled")
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise Unauthorized(_NO_KEY)
    # Digests are compared, so neither the length nor the bytes of the admin key leak in time.
    if not hmac.compare_digest(_digest(token), _digest(configured.get_secret_value())):
        raise Unauthorized(_BAD_KEY)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


# --- handlers --------------------------------------------------------------------------------


async def create_key(request: web.Request) -> web.Response:
    fields = key_fields(await _payload(request), partial=False)
    record, key = await _service(request).create(**fields)
    log_event("key created", key_id=record.id, key_name=record.name)
    return json_response({**record.public(), "key": key}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    records = await _service(request).list()
    return json_response({"object": "list", "data": [record.public() for record in records]})


async def get_key(request: web.Request) -> web.Response:
    return json_response(_found(await _service(request).get(_key_id(request))).public())


async def rotate_key(request: web.Request) -> web.Response:
    grace = grace_seconds(await _payload(request, empty_ok=True))
    service, key_id = _service(request), _key_id(request)
    rotated = await service.rotate(key_id, grace_seconds=grace)
    if rotated is None:
        _found(await service.get(key_id))  # 404 if it does not exist; else it is revoked
        raise InvalidRequest(
            "This key is revoked; create a new key instead.", param="id", code="key_revoked"
        )
    record, key = rotated
    log_event("key rotated", key_id=record.id, grace_seconds=grace)
    return json_response({**record.public(), "key": key})


async def update_key(request: web.Request) -> web.Response:
    fields = key_fields(await _payload(request), partial=True)
    service, key_id = _service(request), _key_id(request)
    if not fields:  # nothing to change: no write, no invalidation
        return json_response(_found(await service.get(key_id)).public())
    record = _found(await service.update(key_id, **fields))
    log_event("key updated", key_id=record.id, fields=sorted(fields))
    return json_response(record.public())


async def revoke_key(request: web.Request) -> web.Response:
    record = _found(await _service(request).revoke(_key_id(request)))
    log_event("key revoked", key_id=record.id)
    return json_response(record.public())


async def unmatched(request: web.Request) -> web.Response:
    """An authorised call to no admin route: 405 if the URL takes other methods, else 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical.startswith("/admin/keys"):
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        headers = {"Allow": ", ".join(sorted(allowed))}
        raise MethodNotAllowed(
            f"Method {request.method} is not allowed for this URL.", headers=headers
        )
    raise NotFound(f"Invalid URL ({request.method} {request.path}).")


# --- helpers ---------------------------------------------------------------------------------


def _service(request: web.Request) -> KeyService:
    return request.app[AUTH].service


def _key_id(request: web.Request) -> str:
    key_id = request.match_info["key_id"]
    if not is_key_id(key_id):  # not an id: never looked up, never echoed (it may be a secret)
        raise _no_such_key()
    return key_id


def _found(record: KeyRecord | None) -> KeyRecord:
    if record is None:
        raise _no_such_key()
    return record


def _no_such_key() -> NotFound:
    return NotFound("No API key has this id.", param="id", code="key_not_found")


async def _payload(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    body = await read_body(request)
    if empty_ok and not body.strip():
        return {}
    return parse_payload(body)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admin/keys", edge(admin_only(create_key)))
    app.router.add_get("/admin/keys", edge(admin_only(list_keys)))
    app.router.add_get("/admin/keys/{key_id}", edge(admin_only(get_key)))
    app.router.add_patch("/admin/keys/{key_id}", edge(admin_only(update_key)))
    app.router.add_delete("/admin/keys/{key_id}", edge(admin_only(revoke_key)))
    app.router.add_post("/admin/keys/{key_id}/rotate", edge(admin_only(rotate_key)))
    # Everything else under /admin: 404 while the API is off, 401 without the admin key.
    app.router.add_route("*", "/admin{tail:(?:/.*)?}", edge(admin_only(unmatched)))
