"""The request edge: request id, errors as OpenAI JSON, one access log line per request.

A handler wrapper rather than an aiohttp middleware: the middleware chain costs two extra
coroutine frames per request (aiohttp adds ``_fix_request_current_app`` beside any middleware),
which the benchmark sees. A catch-all route (:func:`add_fallback`) gives unknown URLs and methods
the same OpenAI-shaped 404 and 405 a middleware would.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from router.appkeys import CONTEXT
from router.context import RequestContext
from router.errors import (
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RouterError,
)
from router.logs import log_access

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Recorder = Callable[[RequestContext], None]
logger = logging.getLogger("switchyard")


def error_response(error: RouterError, request_id: str) -> web.Response:
    headers = {**error.headers, "x-request-id": request_id}
    return web.Response(
        status=error.status,
        body=error.to_json(),
        content_type="application/json",
        headers=headers,
    )


def _from_http_exception(exc: web.HTTPException) -> RouterError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("The request body is too large.")
    if exc.status < 500:
        return InvalidRequest(exc.reason)
    return InternalError("The server had an error while processing your request.")


def edge(handler: Handler, endpoint: str = "", record: Recorder | None = None) -> Handler:
    """Wrap a handler: give it a :class:`RequestContext`, render errors, log the request, and
    hand the finished context to ``record`` (the metrics) exactly once, however it ended."""

    @functools.wraps(handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        ctx = RequestContext(endpoint)
        request[CONTEXT] = ctx
        try:
            response = await handler(request)
        except RouterError as exc:
            ctx.outcome = "error"
            response = error_response(exc, ctx.request_id)
        except web.HTTPException as exc:
            ctx.outcome = "error"
            response = error_response(_from_http_exception(exc), ctx.request_id)
        except asyncio.CancelledError:
            if not ctx.delivered:  # else the client left after the stream's end: completed
                ctx.status, ctx.outcome = 499, "client_disconnect"  # nginx's code for it
            _done(ctx, request, record)
            raise
        except Exception:
            logger.exception("unhandled error", extra={"fields": {"request_id": ctx.request_id}})
            error = InternalError("The server had an error while processing your request.")
            response = error_response(error, ctx.request_id)
        ctx.status = response.status
        _done(ctx, request, record)
        return response

    return handle


def _done(ctx: RequestContext, request: web.Request, record: Recorder | None) -> None:
    log_access(ctx, request.method, request.path)
    if record is not None:
        record(ctx)


async def _fallback(request: web.Request) -> web.StreamResponse:
    """No route took the request: 405 if the URL exists for another method, else 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical == "/{tail}":
            continue
        _, methods = await resource.resolve(request)
        allowed |= methods
    if allowed:
        raise MethodNotAllowed(
            f"Method {request.method} is not allowed for this URL.",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    raise NotFound(f"Invalid URL ({request.method} {request.path}).")


def add_fallback(app: web.Application) -> None:
    """Register last: it matches every URL and method the real routes did not."""
    app.router.add_route("*", "/{tail:.*}", edge(_fallback))
