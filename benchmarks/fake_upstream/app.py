"""``create_app(config)``: routes, the API middleware and the response stamp. Wiring only.

Request path for an API call: middleware (request id, record, auth, inflight and cancel
accounting, errors to OpenAI JSON) -> ``_endpoint`` wrapper (parse body, charge the account's
quota when the endpoint has a prompt, pick the fault, apply what acts before the first byte) ->
the endpoint module. ``/_fake/*`` skips the middleware's bookkeeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from benchmarks.fake_upstream import (
    account,
    chat,
    control,
    conversations,
    embeddings,
    models,
    realtime,
    responses,
    stored,
)
from benchmarks.fake_upstream.call import Call, before_response, model_of
from benchmarks.fake_upstream.faults import NO_FAULT, Fault
from benchmarks.fake_upstream.state import CONTEXT, STATE, FakeConfig, FakeState
from benchmarks.fake_upstream.wire import ApiError, read_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Endpoint = Callable[[Call], Awaitable[web.StreamResponse]]
Estimate = Callable[[dict[str, Any]], int]

_AZURE = "/openai/"
_CONTROL = "/_fake/"
_MAX_BODY = 64 * 1024 * 1024  # embeddings benchmarks post large batches

_API_ROUTES: list[tuple[str, str, Endpoint]] = [
    ("GET", "/v1/models", models.list_models),
    ("GET", "/v1/models/{model_id:.+}", models.retrieve_model),
    ("POST", "/v1/chat/completions", chat.chat_completions),
    ("POST", "/v1/embeddings", embeddings.create_embeddings),
    ("POST", "/v1/responses", responses.create_response),
    ("POST", "/openai/deployments/{deployment}/chat/completions", chat.chat_completions),
    ("POST", "/openai/deployments/{deployment}/embeddings", embeddings.create_embeddings),
    ("POST", "/openai/responses", responses.create_response),
    *[
        (method, prefix + path, endpoint)
        for prefix in ("/v1/responses", "/openai/responses")
        for method, path, endpoint in (
            ("GET", "/{response_id}", stored.retrieve_response),
            ("DELETE", "/{response_id}", stored.delete_response),
            ("POST", "/{response_id}/cancel", stored.cancel_response),
            ("GET", "/{response_id}/input_items", stored.list_input_items),
        )
    ],
    ("POST", "/v1/conversations", conversations.create_conversation),
    ("GET", "/v1/conversations/{conversation_id}", conversations.retrieve_conversation),
    ("POST", "/v1/conversations/{conversation_id}", conversations.update_conversation),
    ("DELETE", "/v1/conversations/{conversation_id}", conversations.delete_conversation),
    ("GET", "/v1/conversations/{conversation_id}/items", conversations.list_items),
    ("POST", "/v1/conversations/{conversation_id}/items", conversations.create_items),
    ("GET", "/v1/conversations/{conversation_id}/items/{item_id}", conversations.retrieve_item),
    ("DELETE", "/v1/conversations/{conversation_id}/items/{item_id}", conversations.delete_item),
]
# The endpoints that spend the account's quota, and how each estimates its prompt at admission.
_ESTIMATES: dict[Endpoint, Estimate] = {
    chat.chat_completions: chat.prompt_estimate,
    embeddings.create_embeddings: embeddings.prompt_estimate,
    responses.create_response: responses.prompt_estimate,
}
# WebSockets: recorded, authenticated and counted by the middleware like the endpoints above.
_SOCKET_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/realtime", realtime.session),
    ("GET", "/openai/realtime", realtime.session),
]
_CONTROL_ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/_fake/faults", control.add_faults),
    ("DELETE", "/_fake/faults", control.clear_faults),
    ("GET", "/_fake/requests", control.list_requests),
    ("DELETE", "/_fake/requests", control.clear_requests),
    ("GET", "/_fake/stats", control.stats),
    ("GET", "/_fake/wait", control.wait),
    ("GET", "/_fake/realtime", control.list_sessions),
    ("DELETE", "/_fake/realtime", control.clear_sessions),
    ("POST", "/_fake/quota", control.set_quota),
    ("GET", "/_fake/quota", control.get_quota),
    ("DELETE", "/_fake/quota", control.clear_quota),
    ("POST", "/_fake/prefix_cache", control.set_prefix_cache),
    ("DELETE", "/_fake/prefix_cache", control.clear_prefix_cache),
    ("POST", "/_fake/store", control.set_store),
    ("DELETE", "/_fake/store", control.clear_store),
    ("DELETE", "/_fake/stats", control.clear_stats),
]


def create_app(config: FakeConfig) -> web.Application:
    app = web.Application(middlewares=[_api_middleware], client_max_size=_MAX_BODY)
    app[STATE] = FakeState(config)
    for method, path, endpoint in _API_ROUTES:
        app.router.add_route(method, path, _endpoint(endpoint))
    for method, path, handler in _SOCKET_ROUTES + _CONTROL_ROUTES:
        app.router.add_route(method, path, handler)
    app.on_response_prepare.append(_stamp)
    return app


@web.middleware
async def _api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(_CONTROL):
        return await _as_openai_error(request, handler)
    state = request.app[STATE]
    context = request[CONTEXT] = state.begin()
    state.record(request, await request.read())
    state.inflight += 1
    try:
        _check_access(request, state.config)
        return await _as_openai_error(request, handler)
    except asyncio.CancelledError:
        if not context.self_closed:
            state.note_cancelled()
        raise
    except ConnectionResetError:
        # The client went away while we wrote; end like a cancel, without aiohttp's error log.
        if not context.self_closed:
            state.note_cancelled()
        raise asyncio.CancelledError from None
    except ApiError as err:
        return err.response()
    finally:
        state.inflight -= 1


async def _as_openai_error(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return err.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = (
            f"Invalid URL ({request.method} {request.path})"
            if exc.status in (404, 405)
            else exc.reason
        )
        return ApiError(exc.status, message).response()


def _check_access(request: web.Request, config: FakeConfig) -> None:
    """OpenAI auth is ``Authorization: Bearer``; Azure's is ``api-key`` plus ``api-version``."""
    azure = request.path.startswith(_AZURE)
    if config.api_key is not None:
        presented = (
            request.headers.get("api-key")
            if azure
            else request.headers.get("Authorization", "").removeprefix("Bearer ")
        )
        if presented != config.api_key:
            # Never echo the presented key: it may be a real one sent to the wrong place.
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
    if azure and "api-version" not in request.query:
        raise ApiError(400, "Missing required query parameter: api-version.", param="api-version")


def _endpoint(endpoint: Endpoint) -> Handler:
    """Parse the body, charge the quota, choose the fault (body ``fake``, else the queue), then
    answer. A refusal by the quota comes before any fault, as the account refuses first."""
    estimate = _ESTIMATES.get(endpoint)

    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        body = await read_json(request)
        fault, words = _parse_fake(body.pop("fake", None))
        tokens = 0
        if estimate is not None and state.quota is not None:
            tokens = estimate(body)
            account.admit(request, model_of(request, body), tokens)
        fault = fault or state.take_fault() or NO_FAULT
        early = await before_response(request, fault)
        if early is not None:
            return early
        return await endpoint(Call(request, body, fault, words, state.config.name, tokens))

    return handler


def _parse_fake(raw: object) -> tuple[Fault | None, int | None]:
    """Split the body's ``fake`` object into its fault (if it names one) and ``words``."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise ApiError(400, "'fake' must be an object.", param="fake")
    options = dict(raw)
    words = options.pop("words", None)
    if words is not None and (isinstance(words, bool) or not isinstance(words, int) or words < 0):
        raise ApiError(400, "fake.words must be a non-negative integer.", param="fake.words")
    return (Fault.parse(options) if options else None), words


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    """Every API answer carries OpenAI's ``x-request-id`` and ``openai-processing-ms``."""
    context = request.get(CONTEXT)
    if context is None:
        return
    elapsed_ms = int((time.perf_counter() - context.started) * 1000)
    response.headers["x-request-id"] = context.request_id
    response.headers["openai-processing-ms"] = str(elapsed_ms)
    response.headers.update(context.quota_headers)
