"""The floor: the least an aiohttp proxy can do. No auth, no routing, no retries, no logs.

``python -m benchmarks.floor_proxy --port P --upstream http://127.0.0.1:PORT`` POSTs each
request's body to ``upstream + path`` on one keep-alive ``aiohttp.ClientSession``, relays JSON
whole and SSE chunk by chunk, and prints ``READY`` once it listens. The router's cost is
measured against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from benchmarks import passthrough
from benchmarks.passthrough import UPSTREAM

SESSION = web.AppKey("session", aiohttp.ClientSession)
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


if __name__ == "__main__":
    passthrough.main("benchmarks.floor_proxy", __doc__, proxy, _session)
