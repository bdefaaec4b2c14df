"""One API call as the endpoint modules see it, and the two ways to answer it.

``send_json`` and ``send_events`` apply the faults that act mid-response: ``chunk_delay``,
``cut_after`` and ``error_after``. A cut closes the connection without the final zero-length
chunk (or short of the announced Content-Length), so the client sees a broken body, never a
clean end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from benchmarks.fake_upstream.faults import Fault, error_response, stream_error
from benchmarks.fake_upstream.state import CONTEXT
from benchmarks.fake_upstream.wire import JSON_TYPE, ApiError, numbered_words, split_words


@dataclass(frozen=True, slots=True)
class Call:
    """The parsed request: body without ``fake``, the fault in force, ``fake.words``, and the
    prompt tokens the quota charged at admission (``estimate``)."""

    request: web.Request
    body: dict[str, Any]
    fault: Fault
    words: int | None
    name: str
    estimate: int = 0

    @property
    def model(self) -> str:
        return model_of(self.request, self.body)

    def answer(self, text: str) -> list[str]:
        """The answer's pieces: f"{name} says: {text}", or "w1 ... wN" with ``fake.words``."""
        if self.words is not None:
            return numbered_words(self.words)
        return split_words(f"{self.name} says: {text}")

    async def send_json(self, obj: object) -> web.StreamResponse:
        body = orjson.dumps(obj)
        if self.fault.cut_after is None:
            return web.Response(body=body, content_type=JSON_TYPE)
        response = web.StreamResponse(headers={"content-type": JSON_TYPE})
        response.content_length = len(body)
        await response.prepare(self.request)
        await response.write(body[: len(body) // 2])
        close_connection(self.request)
        return response

    async def send_events(self, events: Iterable[bytes]) -> web.StreamResponse:
        """Write each SSE event separately, so chunk boundaries reach the client as sent."""
        response = web.StreamResponse(
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(self.request)
        cut_after, delay = self.fault.cut_after, self.fault.chunk_delay
        for sent, event in enumerate(events):
            if sent == cut_after:
                break
            if sent == self.fault.error_after:  # an error event, then a clean end of the body
                await response.write(stream_error(self.fault, self.request))
                break
            if sent and delay:
                await asyncio.sleep(delay)
            await response.write(event)
        if cut_after is not None:
            close_connection(self.request)
            return response
        if self.fault.linger:  # the protocol's end is sent; the response is not over yet
            await asyncio.sleep(self.fault.linger)
        await response.write_eof()
        return response


def model_of(request: web.Request, body: dict[str, Any]) -> str:
    """The body's model; on Azure deployment paths the deployment stands in for it."""
    model = body.get("model") or request.match_info.get("deployment")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "you must provide a model parameter", param="model")
    return model


def close_connection(request: web.Request) -> None:
    """Close the TCP connection under the handler; bytes already written still go out first.

    ``close`` rather than ``abort``: an abort would discard the events before the cut.
    """
    request[CONTEXT].self_closed = True
    transport = request.transport
    if transport is not None:
        transport.close()


async def before_response(request: web.Request, fault: Fault) -> web.StreamResponse | None:
    """Apply the faults that act before the first byte; a response here replaces the answer."""
    if fault.delay_first_byte:
        await asyncio.sleep(fault.delay_first_byte)
    if fault.drop:
        close_connection(request)
        # aiohttp's attempt to send this fails quietly (ConnectionError) on the closed transport.
        return web.Response(status=204)
    return error_response(fault, request)
