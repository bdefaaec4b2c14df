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
from aiohttp.http_exceptions import DecompressSizeError

from router.context import CONTEXT, RequestContext
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

EXACT_POSTS: web.AppKey[dict[str, Handler]] = web.AppKey("exact_posts")
"""Plain POST routes the edge server may hand a request without the app's URL dispatch
(:class:`router.protocol.EdgeServer`): path -> handler, registered by :func:`add_exact_post`."""


def add_exact_post(app: web.Application, path: str, handler: Handler) -> None:
    """A POST route of the app that the edge server may also take directly, when the request's
    target is exactly ``path``: the handler must not need ``request.app`` nor
    ``request.match_info`` (a request taken directly has no match info)."""
    app.router.add_post(path, handler)
    app.setdefault(EXACT_POSTS, {})[path] = handler


def error_response(error: RouterError, request_id: str) -> web.Response:
    headers = {**error.headers, "x-request-id": request_id}
    response = web.Response(
        status=error.status,
        body=error.to_json(),
        content_type="application/json",
        headers=headers,
    )
    if error.closes:
        response.force_close()
    return response


def _error_for(exc: Exception, ctx: RequestContext) -> RouterError:
    """The client-visible error for what a handler raised (a bug is logged, never detailed)."""
    if isinstance(exc, RouterError):
        return exc
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("The request body is too large.")
    if isinstance(exc, web.HTTPException) and exc.status < 500:
        return InvalidRequest(exc.reason)
    if isinstance(exc, web.RequestPayloadError):  # a body the parser refused; never quoted
        if isinstance(exc.__cause__, DecompressSizeError):
            return PayloadTooLarge("The request body is too large once decompressed.")
        return InvalidRequest("The request body could not be read: its framing is not valid.")
    if not isinstance(exc, web.HTTPException):
        logger.exception("unhandled error", extra={"fields": {"request_id": ctx.request_id}})
    return InternalError("The server had an error while processing your request.")


def edge(
    handler: Handler,
    endpoint: str = "",
    record: Recorder | None = None,
    *,
    path: str | None = None,
) -> Handler:
    """Wrap a handler: give it a :class:`RequestContext`, render errors, log the request, and
    hand the finished context to ``record`` (the metrics) exactly once, however it ended.
    ``path``: the route's own, for a plain route (it matches that path only): logged without
    asking the request for it.

    A response the handler returned unsent is sent here, not by aiohttp after we return, so a
    client that left before it was delivered is logged and counted as 499, not 200."""

    @functools.wraps(handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        ctx = RequestContext(endpoint)
        request[CONTEXT] = ctx
        response: web.StreamResponse | None = None
        try:
            try:
                response = await handler(request)
            except ConnectionResetError:
                raise
            except Exception as exc:
                ctx.outcome = "error"
                response = error_response(_error_for(exc, ctx), ctx.request_id)
            if not response.prepared:
                await response.prepare(request)
                await response.write_eof()
        except asyncio.CancelledError:
            _left(ctx)
            raise
        except ConnectionResetError:
            _left(ctx)
        else:
            if ctx.outcome == "client_disconnect":  # the relay saw the client go first
                ctx.status = 499
            else:
                ctx.status = response.status
        finally:  # exactly once, however it ended
            log_access(ctx, request.method, path or request.path)
            if record is not None:
                record(ctx)
        # aiohttp needs something to finish, even for a client that is gone before any answer.
        return response if response is not None else web.Response(status=499)

    return handle


def _left(ctx: RequestContext) -> None:
    """The client went away before its answer was delivered: nginx's 499."""
    if not ctx.delivered:  # else the client left after the stream's end: completed
        ctx.status, ctx.outcome = 499, "client_disconnect"


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
