"""The HTTP/1.1 connection edge: what happens to a client's bytes before a handler runs.

aiohttp parses requests in :class:`aiohttp.web_protocol.RequestHandler`, one per connection.
Three things it does there do not fit a router that holds other people's keys:

- a request its parser refuses (bad header bytes, a line over 8 KB, a bad ``Content-Length``,
  bad chunked framing, a bad method) gets ``handle_error``'s text/plain answer, which repeats
  the parser's message and so the offending line (``Authorization: Bearer sk-…`` included), and
  the same is logged at error level with a traceback;
- nothing times out a request head or body that arrives too slowly (slowloris): its keep-alive
  timer closes an idle connection only after an hour;
- nothing caps the open connections, so a flood of them runs the process out of descriptors.

:class:`EdgeProtocol` subclasses it for those three, :class:`EdgeServer` makes one per
connection, and :class:`EdgeRunner` (aiohttp's ``AppRunner`` through its ``_make_server`` hook)
serves an application with them. No monkeypatching: every change is an override, named below.

Timeouts are nginx's: ``client_header_timeout`` for the whole head, counted from accept or from
the end of the previous response and never reset by a byte, so trickling does not keep a
connection; ``client_body_timeout`` between two reads of the body. Both answer 408 and close.
A connection idle between requests is closed silently at the header timeout, as nginx and Go's
net/http do: a 408 there could cross a request the client is sending and be read as its answer.

One timer per connection: aiohttp's own keep-alive timer, which aiohttp arms exactly where the
head's time starts (accept, end of a response). It fires at a deadline and re-arms itself when
the deadline has moved on, so a new deadline per body chunk costs a float, not a timer handle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, cast

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from router.config import ServerConfig
from router.edge import EXACT_POSTS, Handler
from router.errors import RequestTimeout, ServiceUnavailable
from router.protocol_errors import parse_error, raw_answer

logger = logging.getLogger("switchyard")

AppHandler = Callable[[BaseRequest], Awaitable[web.StreamResponse]]
RequestFactory = Callable[
    [RawRequestMessage, StreamReader, RequestHandler, AbstractStreamWriter, "asyncio.Task[None]"],
    BaseRequest,
]

# A refused connection reads and drops what the client sends for this long after the 503
# (nginx's lingering_close): closing with unread bytes would reset the connection, and the
# client could lose the 503 before it reads it. Bounded, so refusals cannot pile up.
_LINGER_SECONDS = 2.0
_MAX_LINGERING = 1024
_REFUSAL_LOG_EVERY = 10.0  # seconds: one warning per burst of refusals, not one per connection


class BodyTimedOut(RequestTimeout, TimeoutError):
    """Set on a request body that stalled: the handler's read raises it (the edge answers 408).

    A ``TimeoutError`` too, because aiohttp's lingering read of a body the handler left unread
    stops quietly on one, where any other exception is logged as unhandled."""


class EdgeServer(web.Server):
    """aiohttp's low-level server, with an :class:`EdgeProtocol` per connection; counts them.

    ``exact``: POST routes (path -> handler) whose requests, when their target is exactly that
    path, go to the handler without the app's URL dispatch (see :func:`exact_posts`)."""

    def __init__(
        self,
        handler: AppHandler,
        *,
        limits: ServerConfig,
        request_factory: RequestFactory,
        exact: Mapping[str, Handler] | None = None,
        **kwargs: Any,
    ) -> None:
        self._app_handler = handler
        self._exact = dict(exact or {})
        routed = self._route if self._exact else handler
        super().__init__(routed, request_factory=self._dispatch, **kwargs)
        self.limits = limits
        self.open = 0  # connections served, each one file descriptor
        self.lingering = 0  # refused connections not yet closed
        self._factory = request_factory
        self._refused = 0
        self._refusal_logged = 0.0
        self.head_timeout_answer = raw_answer(
            RequestTimeout(f"The request head did not arrive within {limits.header_timeout:g} s.")
        )
        busy = ServiceUnavailable(
            "The router has too many open connections; please retry.",
            code="too_many_connections",
            headers={"retry-after": "1"},
        )
        self.busy_answer = raw_answer(busy)

    def __repr__(self) -> str:
        cap = self.limits.max_connections
        return f"<EdgeServer {self.open}/{cap} connections | {self.lingering} refused lingering>"

    def __call__(self) -> RequestHandler:
        # Overrides aiohttp's protocol factory (web_server.Server.__call__).
        return EdgeProtocol(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self.open += 1
        super().connection_made(handler, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self.open -= 1
        super().connection_lost(handler, exc)

    def refused(self) -> None:
        """Count a refused connection; warn once per burst (a flood must not flood the log)."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= _REFUSAL_LOG_EVERY:
            self._refusal_logged = now
            logger.warning(
                "server.max_connections reached: refusing connections with 503",
                extra={
                    "fields": {
                        "max_connections": self.limits.max_connections,
                        "refused": self._refused,
                    }
                },
            )

    def _route(self, request: BaseRequest) -> Awaitable[web.StreamResponse]:
        # The handler aiohttp calls per request. The app's URL dispatch (its resolve walks the
        # path's parts, makes a match info, and looks up the event loop: a getpid system call)
        # is skipped where it would pick an exact route's handler anyway. A request with an
        # Expect header goes through it: the dispatch answers "100 Continue".
        if request.method == "POST":
            handler = self._exact.get(request.raw_path)
            if handler is not None and "Expect" not in request.headers:
                return handler(cast(web.Request, request))
        return self._app_handler(request)

    def _dispatch(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> BaseRequest:
        # aiohttp calls the request factory as a parsed request goes to its handler: the head is
        # complete, the body's time begins.
        request = self._factory(message, payload, protocol, writer, task)
        if isinstance(protocol, EdgeProtocol):
            protocol.dispatched(payload)
        return request


class EdgeRunner(web.AppRunner):
    """aiohttp's ``AppRunner`` serving through :class:`EdgeServer`."""

    __slots__ = ("_limits",)

    def __init__(self, app: web.Application, limits: ServerConfig, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        # BaseRunner's hook that makes the server: aiohttp's AppRunner runs the app's startup
        # and builds its plain Server; ours takes the same handler, factory and settings.
        plain = await super()._make_server()
        return EdgeServer(
            plain.request_handler,
            limits=self._limits,
            request_factory=plain.request_factory,
            exact=exact_posts(self.app),
            handler_cancellation=plain.handler_cancellation,
            access_log=None,  # ours is one JSON line per request, written by the edge
        )


def exact_posts(app: web.Application) -> dict[str, Handler]:
    """The app's exact POST routes (:data:`~router.edge.EXACT_POSTS`) that the edge server may
    take without the URL dispatch: all of them when the dispatch would do nothing more than
    pick their handler (no middleware, no response-prepare signal, no sub-application), else
    none. A route the app's router would not resolve to its handler is a wiring bug: raised."""
    exact = app.get(EXACT_POSTS, {})
    if not exact or app.middlewares or app.on_response_prepare:
        return {}
    resources = list(app.router.resources())
    if any(isinstance(resource, web.PrefixedSubAppResource) for resource in resources):
        return {}
    for path, handler in exact.items():
        first = next((r for r in resources if r.canonical == path), None)
        posts = [route.handler for route in first or () if route.method in ("POST", "*")]
        if not isinstance(first, web.PlainResource) or posts[:1] != [handler]:
            raise RuntimeError(f"exact route POST {path} is not the route the app resolves")
    return dict(exact)


class Refusal(asyncio.Protocol):
    """A connection past ``server.max_connections``: a 503 at once, then a lingering close."""

    def __init__(self, server: EdgeServer) -> None:
        self._server = server
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server
        server.refused()
        server.lingering += 1
        stream = cast(asyncio.Transport, transport)
        stream.write(server.busy_answer)
        if server.lingering > _MAX_LINGERING or not stream.can_write_eof():
            stream.close()
            return
        stream.write_eof()
        self._timer = asyncio.get_running_loop().call_later(_LINGER_SECONDS, stream.close)

    def data_received(self, data: bytes) -> None:
        pass  # the request nobody will serve: read so that the close is not a reset

    def eof_received(self) -> None:
        return None  # the client is done too: the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.lingering -= 1
        if self._timer is not None:
            self._timer.cancel()


_HEAD, _BODY, _BUSY = 0, 1, 2  # waiting for a head; reading a body; handling


class EdgeProtocol(RequestHandler):
    """aiohttp's connection protocol with the header and body timeouts, the connection cap,
    and OpenAI-shaped answers to what its parser refuses."""

    __slots__ = ("_body", "_body_timeout", "_edge", "_partial", "_phase")

    def __init__(self, manager: EdgeServer, **kwargs: Any) -> None:
        # aiohttp's keep-alive timer becomes the header timer (see the module docstring).
        kwargs["keepalive_timeout"] = manager.limits.header_timeout
        super().__init__(manager, **kwargs)
        self._edge = manager
        self._body_timeout = manager.limits.body_timeout
        self._phase = _HEAD
        self._partial = False  # bytes of the next request head have come
        self._body: StreamReader | None = None  # a body still arriving

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        edge = self._edge
        if edge.open >= edge.limits.max_connections:
            refusal = Refusal(edge)
            transport.set_protocol(refusal)
            refusal.connection_made(transport)
            return
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        body = self._body
        if body is None:
            self._partial = self._partial or bool(data)
        elif self._phase == _BODY:  # nginx's client_body_timeout: the time between two reads
            self._next_keepalive_close_time = self._loop.time() + self._body_timeout
        super().data_received(data)
        if body is not None and body.is_eof():
            self._body = None
            if self._phase == _BODY:
                self._phase = _BUSY

    def dispatched(self, payload: StreamReader) -> None:
        """A complete head goes to its handler: its body, if any, has ``body_timeout`` between
        two reads."""
        self._partial = False
        if payload.is_eof():
            self._phase = _BUSY
            return
        self._phase, self._body = _BODY, payload
        self._arm(self._loop.time() + self._body_timeout)

    def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        # Overrides aiohttp's end of a request: the next head's time begins when it returns
        # (aiohttp re-arms its timer then, unless one is pending: one set for a later body
        # deadline is dropped, so the next head gets no more than header_timeout). Done
        # before aiohttp's coroutine rather than after it: the edge has delivered the answer
        # already (aiohttp's part is a no-op then), and no coroutine frame of our own is
        # added per request.
        self._phase = _HEAD
        handle = self._keepalive_handle
        limit = self._loop.time() + self._edge.limits.header_timeout
        if isinstance(handle, asyncio.TimerHandle) and handle.when() > limit:
            handle.cancel()
            self._keepalive_handle = None
        return super().finish_response(request, resp, start_time)

    def _arm(self, deadline: float) -> None:
        self._next_keepalive_close_time = deadline
        handle = self._keepalive_handle
        if isinstance(handle, asyncio.TimerHandle):
            if handle.when() <= deadline:
                return  # it fires first and re-arms itself for the deadline
            handle.cancel()
        self._keepalive_handle = self._loop.call_at(deadline, self._process_keepalive)

    def _process_keepalive(self) -> None:
        # Overrides aiohttp's keep-alive timer callback (RequestHandler._process_keepalive):
        # the connection's one timer, for the head and the body. aiohttp's own only closes a
        # connection idle past keepalive_timeout, which it still does here (silently).
        self._keepalive_handle = None
        if self._force_close or not self._keepalive:
            return
        deadline = self._next_keepalive_close_time
        if self._loop.time() < deadline:
            self._keepalive_handle = self._loop.call_at(deadline, self._process_keepalive)
        elif self._phase == _BODY:
            self._body_timed_out()
        elif self._phase == _HEAD and self._waiter is not None and not self._waiter.done():
            self._head_timed_out()

    def _head_timed_out(self) -> None:
        if self._partial and self.transport is not None:
            self.transport.write(self._edge.head_timeout_answer)
            logger.info("request head timed out", extra={"fields": {"status": 408}})
        self.force_close()

    def _body_timed_out(self) -> None:
        body, self._phase = self._body, _BUSY
        if body is not None and not body.is_eof():
            seconds = self._body_timeout
            body.set_exception(BodyTimedOut(f"The request body stalled for {seconds:g} s."))

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # Overrides aiohttp's answer to a request its parser refused (and to a handler error
        # that escaped the edge, which the edge never lets happen): OpenAI's JSON, never the
        # parser's message (it quotes the refused bytes), logged as one line.
        error = parse_error(status, exc)
        level = logging.ERROR if error.status >= 500 else logging.INFO
        fields = {"status": error.status, "error": type(exc).__name__ if exc else None}
        logger.log(level, "request refused before the handler", extra={"fields": fields})
        if request.writer.output_size > 0:  # aiohttp's rule: a started answer cannot be replaced
            raise ConnectionError("the response had started; the connection is dropped")
        response = web.Response(
            status=error.status,
            body=error.to_json(),
            content_type="application/json",
            headers={**error.headers, "Connection": "close"},  # HTTP/1.0 too: said outright
        )
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # Overrides aiohttp's log of an exception caught outside any handler: one line with the
        # exception's type, no traceback (its message can quote the request's bytes). A body
        # that breaks its framing while aiohttp drains it unread is the client's mistake.
        exc = kw.get("exc_info")
        client = isinstance(exc, RequestPayloadError | HttpProcessingError)
        fields = {"error": type(exc).__name__ if isinstance(exc, BaseException) else None}
        message = "bad request body" if client else "connection error"
        logger.log(logging.INFO if client else logging.ERROR, message, extra={"fields": fields})
