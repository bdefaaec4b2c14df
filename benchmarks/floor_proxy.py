"""The floor: the least an aiohttp proxy can do. No auth, no routing, no retries, no logs.

``python -m benchmarks.floor_proxy --port P --upstream http://127.0.0.1:PORT`` POSTs each
request's body to ``upstream + path`` on one keep-alive session, relays JSON whole and SSE
chunk by chunk, and prints ``READY`` once it listens. The router's cost is measured against it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
_JSON = {"Content-Type": "application/json"}


async def proxy(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    url = request.app[UPSTREAM] + request.path_qs
    async with request.app[SESSION].post(url, data=body, headers=_JSON) as upstream:
        headers = {"Content-Type": upstream.headers.get("Content-Type", "application/json")}
        if upstream.content_type != "text/event-stream":
            return web.Response(status=upstream.status, body=await upstream.read(), headers=headers)
        out = web.StreamResponse(status=upstream.status, headers=headers)
        await out.prepare(request)
        async for chunk in upstream.content.iter_any():
            await out.write(chunk)
        return out


async def _session(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    yield
    await app[SESSION].close()


async def serve(port: int, upstream: str) -> None:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session)
    app.router.add_post("/{path:.*}", proxy)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("READY", flush=True)
    await asyncio.Event().wait()  # until SIGTERM/SIGINT ends the process


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor_proxy", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:18090")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
