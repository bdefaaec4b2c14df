"""Exact POST routes: the edge server hands their requests to the handler without the app's URL
dispatch, and only where the dispatch would have picked that handler and done nothing more.

Over real HTTP on loopback, through :class:`router.protocol.EdgeRunner` as the router serves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from router.config import ServerConfig
from router.edge import add_exact_post
from router.protocol import EdgeRunner, exact_posts

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _answer(request: web.Request) -> web.StreamResponse:
    """Says whether the request came through the URL dispatch (it has match info then)."""
    body = await request.read()
    taken = "direct" if request._match_info is None else "dispatched"  # match_info asserts
    return web.Response(text=f"{taken} {len(body)}")


def _app() -> web.Application:
    app = web.Application()
    add_exact_post(app, "/v1/exact", _answer)
    app.router.add_get("/v1/exact", _answer)
    return app


@pytest.fixture
async def served() -> AsyncIterator[str]:
    runner = EdgeRunner(_app(), ServerConfig())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _post(url: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(URL(url, encoded=True), data=b"12345") as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_an_exact_post_skips_the_dispatch(served: str) -> None:
    assert await _post(served + "/v1/exact") == "direct 5"


async def test_any_other_target_or_method_goes_through_the_dispatch(served: str) -> None:
    assert await _post(served + "/v1/exact?x=1") == "dispatched 5"
    assert await _post(served + "/v1/ex%61ct") == "dispatched 5"
    async with aiohttp.ClientSession() as session:
        async with session.get(served + "/v1/exact") as response:
            assert await response.text() == "dispatched 0"
        async with session.put(served + "/v1/exact") as response:
            assert response.status == 405


async def test_expect_100_continue_is_answered_by_the_dispatch(served: str) -> None:
    host, port = served.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = "POST /v1/exact HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    writer.write(head.encode())
    interim = await reader.readuntil(b"\r\n\r\n")  # no body sent before the 100
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"12345")
    final = await reader.readuntil(b"\r\n\r\n")
    assert final.startswith(b"HTTP/1.1 200")
    length = int(final.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert await reader.readexactly(length) == b"dispatched 5"
    writer.close()


async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await handler(request)


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    pass


def test_exact_routes_are_none_where_the_dispatch_does_more() -> None:
    assert exact_posts(_app()) == {"/v1/exact": _answer}
    with_middleware = web.Application(middlewares=[web.middleware(_middleware)])
    add_exact_post(with_middleware, "/v1/exact", _answer)
    assert exact_posts(with_middleware) == {}
    with_signal = _app()
    with_signal.on_response_prepare.append(_on_prepare)
    assert exact_posts(with_signal) == {}
    with_subapp = _app()
    with_subapp.add_subapp("/sub", web.Application())
    assert exact_posts(with_subapp) == {}


def test_an_exact_route_the_app_would_not_resolve_is_refused() -> None:
    app = web.Application()

    async def first(request: web.Request) -> web.StreamResponse:
        return web.Response()

    app.router.add_post("/v1/exact", first)  # registered first: the dispatch picks this one
    app.router.add_get("/other", first)
    add_exact_post(app, "/v1/exact", _answer)  # a second resource for the same path
    with pytest.raises(RuntimeError, match="POST /v1/exact"):
        exact_posts(app)
