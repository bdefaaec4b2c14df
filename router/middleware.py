"""The request-edge middleware: request id, errors as OpenAI JSON, one access log line.

One middleware, not three: every layer costs a coroutine frame per request, and these three
share the same ``try``/``finally``.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

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
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("Unknown request URL. Please check the URL for typos.")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(f"Method {exc.method} is not allowed for this URL.")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("The request body is too large.")
    if exc.status < 500:
        return InvalidRequest(exc.reason)
    return InternalError("The server had an error while processing your request.")


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = RequestContext()
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
        ctx.status, ctx.outcome = 499, "client_disconnect"  # nginx's code for it
        log_access(ctx, request.method, request.path)
        raise
    except Exception:
        logger.exception("unhandled error", extra={"fields": {"request_id": ctx.request_id}})
        error = InternalError("The server had an error while processing your request.")
        response = error_response(error, ctx.request_id)
    ctx.status = response.status
    log_access(ctx, request.method, request.path)
    return response
