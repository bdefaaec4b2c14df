"""A slow streaming upstream for ``--streams``: every answer stays open until told to end.

``python -m benchmarks.slow_upstream --port P``: each POST gets a chunked ``text/event-stream``
answer whose first ``chat.completion.chunk`` is written at once, then one more every
``--interval`` seconds (a model generating slowly), until SIGUSR1: then every open stream gets
its last chunk and ``data: [DONE]``. HTTP/1.1 keep-alive, one request at a time per connection.
Prints ``READY`` once it listens. Small on purpose: nginx cannot hold a stream open on demand.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import uvloop

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_EVENT = (
    b'data: {"id":"chatcmpl-slow","object":"chat.completion.chunk","created":1741570283,'
    b'"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"%s"},'
    b'"logprobs":null,"finish_reason":%s}]}\n\n'
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


TICK = chunk(_EVENT % (b" word", b"null"))
LAST = chunk(_EVENT % (b".", b'"stop"') + b"data: [DONE]\n\n") + b"0\r\n\r\n"


class Stream(asyncio.Protocol):
    """One connection: reads a request (headers and ``Content-Length`` body), answers slowly."""

    def __init__(self, open_streams: set[Stream]) -> None:
        self.open_streams = open_streams
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            ),
            0,
        )
        if len(body) < length:
            return
        self.buffer = body[length:]
        assert self.transport is not None
        self.transport.write(HEAD + TICK)
        self.open_streams.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open_streams.discard(self)

    def tick(self) -> None:
        if self.transport is not None:
            self.transport.write(TICK)

    def finish(self) -> None:
        self.open_streams.discard(self)
        if self.transport is not None:
            self.transport.write(LAST)


async def serve(port: int, interval: float) -> None:
    open_streams: set[Stream] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Stream(open_streams), "127.0.0.1", port, backlog=4096)

    def finish_all() -> None:
        for stream in list(open_streams):
            stream.finish()

    loop.add_signal_handler(signal.SIGUSR1, finish_all)
    print("READY", flush=True)
    async with server:
        while True:
            await asyncio.sleep(interval)
            for stream in list(open_streams):
                stream.tick()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.slow_upstream", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between chunks")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.interval))


if __name__ == "__main__":
    main()
