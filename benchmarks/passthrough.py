"""What the pass-through proxies share: aiohttp's server, one route, no features.

The floor (``floor_proxy``) and the two client candidates (``candidate_httptools``,
``candidate_pyreqwest``) differ only in the upstream client: each module gives a handler and a
``cleanup_ctx`` that opens and closes its client. ``python -m benchmarks.<module> --port P
--upstream URL`` prints ``READY`` once it listens. An ``https://`` upstream is verified against
``SSL_CERT_FILE`` (the benchmark's own CA) by every client here.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import uvloop
from aiohttp import web

UPSTREAM = web.AppKey("upstream", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ClientContext = Callable[[web.Application], AsyncIterator[None]]


async def serve(port: int, upstream: str, handler: Handler, client: ClientContext) -> None:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(client)
    app.router.add_post("/{path:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("READY", flush=True)
    await asyncio.Event().wait()  # until SIGTERM/SIGINT ends the process


def main(prog: str, doc: str | None, handler: Handler, client: ClientContext) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:18090")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstream, handler, client))
