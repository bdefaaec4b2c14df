"""A stream's head reaches the client as soon as the upstream's does, whatever the events do.

The relay holds the head back only when the first events came with it (then head, events and,
for a stream that came whole, the end leave in one write). A scripted upstream on a loop in a
thread of the test process writes the head and then holds its events until the test lets go.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.functional.conftest import CLIENT_KEY, RouterFactory, make_config
from tests.functional.test_upstream_tls_proxy import LoopThread
from tests.http_script import Peer, ScriptedServer

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\nx-request-id: req_scripted\r\n\r\n"
)
EVENTS = (
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
    b'"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


class Upstream:
    """Answers every request with ``HEAD``; the events follow when ``release`` is set, or
    with the head in the same write when ``whole``."""

    def __init__(self, whole: bool) -> None:
        self.whole = whole
        self.release = threading.Event()
        self.server = ScriptedServer(self._script)

    async def _script(self, peer: Peer) -> None:
        while await peer.request():
            if self.whole:
                await peer.send(HEAD + chunked(EVENTS))
                continue
            await peer.send(HEAD)
            await asyncio.to_thread(self.release.wait, 30)
            await peer.send(chunked(EVENTS))


Serve = Callable[[bool], tuple[Upstream, str]]


@pytest.fixture
def serve(start_router: RouterFactory) -> Iterator[Serve]:
    """Start a scripted upstream (on a loop in a thread) and a router in front of it."""
    thread = LoopThread()
    servers: list[ScriptedServer] = []

    def start(whole: bool) -> tuple[Upstream, str]:
        upstream = Upstream(whole)
        thread.run(upstream.server.__aenter__())
        servers.append(upstream.server)
        url = upstream.server.url() + "/v1"
        models = {"gpt-4o": {"backends": [{"name": "scripted", "url": url, "api_key": "k"}]}}
        return upstream, start_router(make_config(models)).base_url

    yield start
    for server in servers:
        thread.run(server.__aexit__(None, None, None))
    thread.close()


def test_the_head_does_not_wait_for_the_first_event(serve: Serve) -> None:
    upstream, base_url = serve(False)
    try:
        with (
            httpx.Client(timeout=10) as client,
            client.stream("POST", f"{base_url}/chat/completions", json=BODY, headers=AUTH) as reply,
        ):
            # The head is here while the upstream still holds every event.
            assert reply.status_code == 200
            assert not upstream.release.is_set()
            assert reply.headers["x-request-id"] == "req_scripted"
            upstream.release.set()
            assert reply.read() == EVENTS
    finally:
        upstream.release.set()


def test_a_stream_that_came_whole_is_relayed_whole(serve: Serve) -> None:
    _, base_url = serve(True)
    with httpx.Client(timeout=10) as client:
        for _ in range(3):  # the keep-alive connection carries the next answer cleanly
            reply = client.post(f"{base_url}/chat/completions", json=BODY, headers=AUTH)
            assert reply.status_code == 200
            assert reply.headers["content-type"] == "text/event-stream"
            assert reply.content == EVENTS
