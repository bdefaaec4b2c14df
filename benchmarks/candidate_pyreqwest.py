"""Candidate 2: the floor's server with ``pyreqwest`` (Rust reqwest + hyper + rustls) upstream.

pyreqwest runs its Tokio runtime on its own thread; every answer, and every chunk of a stream,
crosses from that thread to the event loop. That crossing is what the stream scenario prices.
Optional: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from pyreqwest.client import Client, ClientBuilder

from benchmarks import passthrough
from benchmarks.passthrough import UPSTREAM

CLIENT = web.AppKey("client", Client)
_JSON = {"Content-Type": "application/json"}


async def proxy(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    url = request.app[UPSTREAM] + request.path_qs
    builder = request.app[CLIENT].post(url).headers(_JSON).body_bytes(body)
    async with builder.build_streamed() as upstream:
        content_type = upstream.get_header("content-type") or "application/json"
        headers = {"Content-Type": content_type}
        if not content_type.startswith("text/event-stream"):
            answer = bytes(await upstream.bytes())
            return web.Response(status=upstream.status, body=answer, headers=headers)
        out = web.StreamResponse(status=upstream.status, headers=headers)
        await out.prepare(request)
        reader = upstream.body_reader
        while (chunk := await reader.read_chunk()) is not None:
            await out.write(bytes(chunk))
        return out


def _builder() -> ClientBuilder:
    builder = ClientBuilder().max_connections(256).http1_only()
    ca_file = os.environ.get("SSL_CERT_FILE")
    if ca_file:  # rustls has its own root store: hand it the benchmark's CA
        builder = builder.add_root_certificate_pem(Path(ca_file).read_bytes())
    return builder


async def _client(app: web.Application) -> AsyncIterator[None]:
    async with _builder().build() as client:
        app[CLIENT] = client
        yield


if __name__ == "__main__":
    passthrough.main("benchmarks.candidate_pyreqwest", __doc__, proxy, _client)
