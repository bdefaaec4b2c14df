"""The proxied endpoints: chat completions, embeddings, responses.

The whole request path reads top to bottom in :func:`proxy`: authenticate, parse once, route,
forward (with retries), relay, and free the backend slot in one ``finally``.
"""

from __future__ import annotations

from aiohttp import web

from router.appkeys import CONTEXT, FORWARDER, ROUTES
from router.config import Endpoint
from router.edge import edge
from router.handlers.common import (
    authenticate,
    check_stream,
    parse_payload,
    read_body,
    require_model,
)
from router.upstream.relay import relay

# Client headers that mean something to the upstream. Everything else stays here: above all
# Authorization (the client's key), and OpenAI-Organization/-Project (the client's account
# is not the backend's).
_FORWARDED_HEADERS = ("Content-Type", "Accept", "OpenAI-Beta", "User-Agent")


def forward_headers(request: web.Request, request_id: str) -> dict[str, str]:
    incoming = request.headers
    headers = {name: value for name in _FORWARDED_HEADERS if (value := incoming.get(name))}
    headers.setdefault("Content-Type", "application/json")
    # Lets the provider's logs be matched with ours (OpenAI honours X-Client-Request-Id).
    headers["X-Client-Request-Id"] = request_id
    return headers


async def proxy(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    ctx = request[CONTEXT]
    principal = authenticate(request)
    ctx.key_id = principal.key_id
    body = await read_body(request)
    payload = parse_payload(body)
    ctx.model = model = require_model(payload)
    check_stream(payload)
    chain = request.app[ROUTES].chain(endpoint, model, principal)
    headers = forward_headers(request, ctx.request_id)
    reply = await request.app[FORWARDER].forward(chain, payload, body, headers, ctx)
    try:
        ctx.upstream_started, ctx.upstream_first_byte = reply.started, reply.first_byte
        ctx.upstream_request_id = reply.response.headers.get("x-request-id")
        return await relay(request, reply, ctx, endpoint)
    finally:
        reply.close()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "chat")


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "embeddings")


async def responses(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "responses")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", edge(chat_completions))
    app.router.add_post("/v1/embeddings", edge(embeddings))
    app.router.add_post("/v1/responses", edge(responses))
