"""The proxied endpoints: chat completions, embeddings, responses.

The whole request path reads top to bottom in :func:`proxy`: authenticate, parse once, route,
admit against the key's limits, forward (with retries and fallbacks), relay; then one
``finally`` frees the backend slot and another settles the key's tokens and concurrency slot.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import orjson
from aiohttp import web

from router.appkeys import METRICS, PROXY, ProxyDeps
from router.auth import Principal
from router.cachekey import cache_key
from router.context import CONTEXT, RequestContext
from router.edge import Handler, add_exact_post, edge
from router.endpoints import ENDPOINTS, Endpoint
from router.handlers import homing
from router.handlers.accounts import admit_accounts
from router.handlers.admission import Charge, admit, finish
from router.handlers.common import (
    authenticate,
    is_text,
    parse_request,
    read_body,
)
from router.upstream.forward import HttpAttempt
from router.upstream.relay import relay
from router.upstream.route import Route, plans_quota
from router.upstream.streamtap import StreamTap
from router.usage import estimate_tokens, usage_from_json, with_usage_requested

# Client headers that mean something to the upstream. Everything else stays here: above all
# Authorization (the client's key), and OpenAI-Organization/-Project (the client's account
# is not the backend's).
_FORWARDED_HEADERS = ("Content-Type", "Accept", "OpenAI-Beta", "User-Agent")


def forward_headers(request: web.Request, request_id: str) -> dict[str, str]:
    incoming = request.headers
    headers: dict[str, str] = {}
    for name in _FORWARDED_HEADERS:
        value = incoming.get(name)
        # A value that is not valid UTF-8 stays here: the upstream request could not encode it.
        if value and (value.isascii() or is_text(value)):
            headers[name] = value
    headers.setdefault("Content-Type", "application/json")
    # Lets the provider's logs be matched with ours (OpenAI honours X-Client-Request-Id).
    headers["X-Client-Request-Id"] = request_id
    return headers


async def proxy(
    request: web.Request, app: web.Application, endpoint: Endpoint
) -> web.StreamResponse:
    ctx = request[CONTEXT]
    deps = app[PROXY]  # one lookup; not request.app: an exact route's request has no match info
    config = deps.config
    principal = await authenticate(request, deps.auth)
    ctx.key_id = principal.key_id
    ctx.priority = principal.priority
    body = await read_body(request, config.server.max_body_bytes)
    payload, model, stream = parse_request(body)
    ctx.model = model
    chain = deps.routes.chain(endpoint, model, principal)
    if chain[0].pool.ring is not None:  # affinity: prompt (router.cachekey)
        ctx.affinity = cache_key(endpoint, payload)
    keep = None
    if endpoint == "responses":  # stored responses have a home (router.handlers.homing)
        chain, keep = await homing.plan(app, payload, principal, model, chain)
    if not principal.unlimited or plans_quota(chain):
        # Key limits, or accounts whose quotas the pick plans with: the token estimate is needed.
        ctx.tokens = estimate_tokens(payload, body, endpoint, config.estimate)
    if not principal.unlimited or chain[0].declares:
        return await _admitted(
            request, deps, ctx, principal, endpoint, chain, payload, body, stream=stream, keep=keep
        )
    return await _forward(
        request, deps, ctx, endpoint, chain, payload, body, stream=stream, keep=keep, charge=None
    )


async def _admitted(
    request: web.Request,
    deps: ProxyDeps,
    ctx: RequestContext,
    principal: Principal,
    endpoint: Endpoint,
    chain: tuple[Route, ...],
    payload: dict[str, Any],
    body: bytes,
    *,
    stream: bool,
    keep: homing.Keeper | None,
) -> web.StreamResponse:
    """Forward under admission: the key's limits, or the declared quota of the account the
    pick plans with (refused with 429 here), settled with the real usage in one finally."""
    limiter = deps.limiter
    if chain[0].declares:
        charge = await admit_accounts(limiter, principal, chain[0], ctx, deps.metrics)
    else:
        charge = await admit(limiter, principal, ctx.tokens, ctx.request_id, deps.metrics)
    try:
        return await _forward(
            request,
            deps,
            ctx,
            endpoint,
            chain,
            payload,
            body,
            stream=stream,
            keep=keep,
            charge=charge,
        )
    finally:
        await finish(limiter, charge)


def _asking_usage(
    endpoint: Endpoint, payload: dict[str, Any], body: bytes
) -> tuple[dict[str, Any], bytes, bool]:
    """What goes upstream of a stream whose usage the router reads: a chat stream asks for its
    usage chunk, and the last item says the relay removes that chunk again (the client did not
    ask for it)."""
    if ENDPOINTS[endpoint].asks_usage:
        asked = with_usage_requested(payload)
        if asked is not None:
            return asked, _with_usage_bytes(payload, body) or orjson.dumps(asked), True
    return payload, body, False


_ASK_USAGE = b'{"stream_options":{"include_usage":true},'


def _with_usage_bytes(payload: dict[str, Any], body: bytes) -> bytes | None:
    """The client's bytes with ``stream_options`` put first, when it has none: a splice at the
    opening brace instead of serialising the whole request again (its messages can be large).
    The payload is a non-empty object (it names a model), so a comma follows the new member."""
    if "stream_options" in payload:
        return None
    brace = body.find(b"{")
    return body[:brace] + _ASK_USAGE + body[brace + 1 :]


async def _forward(
    request: web.Request,
    deps: ProxyDeps,
    ctx: RequestContext,
    endpoint: Endpoint,
    chain: tuple[Route, ...],
    payload: dict[str, Any],
    body: bytes,
    *,
    stream: bool,
    keep: homing.Keeper | None,
    charge: Charge | None,
) -> web.StreamResponse:
    """Forward (with retries and fallbacks), relay, and free the backend slot in one finally.

    The upstream's token usage is read (the tap for streams, the JSON body otherwise) for the
    metrics and the key's ``charge``, if either wants it; a stream is asked for its usage chunk
    then, which the relay removes again where the client did not ask for it. ``keep`` records
    the home of a stored response before the client sees its id."""
    metrics = deps.config.metrics
    count = charge is not None or metrics.enabled
    strip = False
    if stream and (
        (metrics.enabled and metrics.stream_usage) or (charge is not None and charge.wants_usage)
    ):
        payload, body, strip = _asking_usage(endpoint, payload, body)
    headers = forward_headers(request, ctx.request_id)
    attempt = HttpAttempt(payload, body, headers)
    reply = await deps.forwarder.forward(chain, attempt, ctx)
    try:
        if keep is not None:
            await keep(reply, ctx)
        ctx.upstream_first_byte = reply.first_byte
        ctx.upstream_request_id = reply.response.headers.get("x-request-id")
        if not count:
            return await relay(request, reply, ctx, endpoint)
        tap = StreamTap(endpoint, strip=strip) if reply.streaming else None
        limit_headers = charge.headers if charge is not None else None
        response = await relay(request, reply, ctx, endpoint, headers=limit_headers, tap=tap)
        ctx.usage = usage = tap.usage if tap is not None else usage_from_json(reply.body)
        if charge is not None:
            charge.actual = usage.total if usage is not None else None
        return response
    finally:
        reply.close()


def _proxying(app: web.Application, endpoint: Endpoint) -> Handler:
    """The handler of an endpoint: it returns :func:`proxy`'s coroutine, so no coroutine frame
    of its own is on the hot path (every resumption of the request walks its whole chain)."""

    def handler(request: web.Request) -> Coroutine[None, None, web.StreamResponse]:
        return proxy(request, app, endpoint)

    return handler


def add_routes(app: web.Application) -> None:
    record = app[METRICS].request_done
    for name in ("chat", "embeddings", "responses"):
        endpoint = ENDPOINTS[name]
        handler = edge(_proxying(app, name), name, record, path=endpoint.path)
        add_exact_post(app, endpoint.path, handler)
