"""Relay an upstream answer to the client: a JSON body whole, an SSE stream as it arrives.

Stream bytes are forwarded, never re-encoded. The relay only looks at them to keep one promise:
the client never sees half an event, and a stream that did not end the way the protocol ends
(``data: [DONE]`` for chat, ``response.completed|incomplete|failed`` for responses) reaches the
client as an SSE ``error`` event — never as a clean end. A well-behaved upstream writes whole
events per chunk, so its chunks pass through unchanged, boundaries included. Error bodies and
error events are the exception: the backend's credentials are scrubbed out of them
(:mod:`router.upstream.scrub`).
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from router.context import RequestContext
from router.endpoints import ENDPOINTS, Endpoint
from router.outcomes import StreamOutcome
from router.upstream.http import HttpClientError
from router.upstream.reply import Reply
from router.upstream.scrub import reports_error
from router.upstream.streamtap import StreamTap

_EVENT_END = (b"\n\n", b"\r\n\r\n")


async def relay(
    request: web.Request,
    reply: Reply,
    ctx: RequestContext,
    endpoint: Endpoint,
    *,
    headers: dict[str, str] | None = None,
    tap: StreamTap | None = None,
) -> web.StreamResponse:
    """Send ``reply`` to the client, with ``headers`` added (the key's rate-limit headers);
    ``tap`` reads the first output's time and the token usage out of a stream."""
    out_headers = reply.client_headers(ctx.request_id)
    if headers:
        out_headers.update(headers)
    if not reply.streaming:
        ctx.upstream_done = reply.done
        return web.Response(status=reply.status, body=_client_body(reply), headers=out_headers)
    ctx.stream = True
    ctx.status = reply.status
    streams = reply.backend.metrics.open_streams
    streams.inc()
    try:
        return await _stream(request, reply, ctx, endpoint, out_headers, tap)
    finally:
        ctx.upstream_done = time.monotonic()
        if tap is not None:
            ctx.first_token = tap.first_output
        streams.dec()


def _client_body(reply: Reply) -> bytes | None:
    """The body as the client gets it: an error body without the backend's credentials.

    A 2xx body is relayed unscanned. It is the model's answer to the client's own input, which
    never holds the backend's credential (that travels in a header no model reads); scanning
    it would put a regex over every answer, megabytes of embeddings included, on the success
    path, and could rewrite what the client itself wrote.
    """
    scrubber = reply.backend.scrubber
    if scrubber is None or reply.body is None or reply.status < 300:
        return reply.body
    return scrubber.body(reply.body)


async def _stream(
    request: web.Request,
    reply: Reply,
    ctx: RequestContext,
    endpoint: Endpoint,
    headers: dict[str, str],
    tap: StreamTap | None,
) -> web.StreamResponse:
    out = _Stream(status=reply.status, headers=headers)
    # The head goes out at once, as OpenAI's does, unless the first events came with it: then
    # head and events leave in one write (and the end too, for a stream that came whole).
    out.defer_head(reply.response.ready)
    await out.prepare(request)
    try:
        # Forward events until the upstream ends. The client's response enforces the stream's
        # idle limit: it counts only while the relay waits for the upstream, never while it
        # writes to a slow client.
        failure: tuple[StreamOutcome, str] | None
        try:
            complete = await _forward_events(reply, out, ENDPOINTS[endpoint].stream_ends, tap, ctx)
        except (TimeoutError, HttpClientError) as exc:
            failure = _failure(reply.backend.name, exc)
        else:
            failure = None if complete else _failure(reply.backend.name, None)
        if failure is not None:
            ctx.outcome = failure[0]
            await out.write(error_event(failure[1]))
    except ConnectionResetError:
        if not ctx.delivered:
            ctx.outcome = "client_disconnect"
    return out


def _failure(name: str, exc: BaseException | None) -> tuple[StreamOutcome, str]:
    """How a stream that did not end as the protocol says ended: ``exc`` (a timeout or a
    broken exchange), or None for an upstream that ended it early but cleanly."""
    if isinstance(exc, TimeoutError):
        return "timeout", f"Backend {name} stopped sending in the middle of the stream."
    if exc is not None:
        return "upstream_error", f"Backend {name} broke off the stream."
    return "upstream_error", f"Backend {name} ended the stream before it was complete."


async def _forward_events(
    reply: Reply,
    out: _Stream,
    ends: tuple[bytes, ...],
    tap: StreamTap | None,
    ctx: RequestContext,
) -> bool:
    response = reply.response
    next_chunk = response.next_chunk
    scrubber = reply.backend.scrubber
    pending = b""
    complete = False
    while True:
        if out.head_held and not response.ready:
            out.head_held = False
            await out.write(b"")  # about to wait for the upstream: the client gets the head now
        chunk = await next_chunk()
        if not chunk:
            return complete and not pending
        if pending:
            chunk, pending = pending + chunk, b""
        if not chunk.endswith(_EVENT_END):
            chunk, pending = _split_at_event_end(chunk)
            if not chunk:
                continue
        # A healthy chat chunk pays one substring test here; error events lose the secrets.
        if scrubber is not None and b"error" in chunk and reports_error(chunk):
            chunk = scrubber.events(chunk)
        if not complete:
            complete = _ends(chunk, ends)
        if tap is not None:
            chunk = tap.feed(chunk)
        if complete and not pending and response.drained:
            # The upstream's body ended with this read, as the protocol ends: the last chunk and
            # the end of the chunked answer go out in one write (one syscall less per stream).
            await out.write_eof(chunk)
            ctx.delivered = True
            return True
        if chunk:
            out.head_held = False
            await out.write(chunk)
        ctx.delivered = complete  # the client has the protocol's end: whatever follows


class _Stream(web.StreamResponse):
    """aiohttp's streamed response, whose head may wait for the first write.

    aiohttp sends a :class:`~aiohttp.web.StreamResponse`'s head as soon as it is prepared (its
    ``_send_headers_immediately``), and a :class:`~aiohttp.web.Response`'s with the body. A
    stream whose first events are already here is better served as the latter: one write."""

    head_held = False
    """The head waits for the first write (:meth:`defer_head`) and none has been made."""

    def defer_head(self, defer: bool) -> None:
        self._send_headers_immediately = not defer
        self.head_held = defer


def _ends(chunk: bytes, ends: tuple[bytes, ...]) -> bool:
    # The usual place first: chat's ``data: [DONE]`` closes the last chunk (a look at its
    # tail, where a search would read the whole chunk, ~2 us for 3 KB). A loop, not any()
    # over a generator: called per chunk, and the generator costs twice the tests.
    for marker in ends:  # noqa: SIM110 (the cost, above)
        if chunk.endswith(marker, -len(marker) - 4, -2) or marker in chunk:
            return True
    return False


def _split_at_event_end(data: bytes) -> tuple[bytes, bytes]:
    """(whole events, the partial event after them)."""
    lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
    cut = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
    return data[:cut], data[cut:]


def error_event(message: str) -> bytes:
    """An SSE ``error`` event the OpenAI SDKs raise as ``APIError``."""
    body = {
        "error": {
            "message": message,
            "type": "server_error",
            "param": None,
            "code": "upstream_stream_error",
        }
    }
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
