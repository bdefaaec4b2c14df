"""The router's backends over HTTPS and through an egress proxy, end to end.

A TLS terminator (a certificate from a CA the test makes with trustme) sits in front of the
fake upstream, and a scripted CONNECT proxy in front of that; both run on a loop in a thread
of the test process. The router reaches the fake only through both.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import trustme

from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_A,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.http_script import Peer, ScriptedProxy, ScriptedServer, pipe
from tests.reliability.scan import assert_clean

T = TypeVar("T")
PROXY_PASSWORD = "proxy-secret-password-0123"
HELLO: list[Any] = [{"role": "user", "content": "Hello"}]


class LoopThread:
    """An event loop in a thread, for servers the router (a subprocess) talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Edge:
    """TLS in front of the fake upstream, and a CONNECT proxy in front of that."""

    def __init__(self, fake: Fake, authority: trustme.CA) -> None:
        self.fake_port = urlsplit(fake.url).port
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("localhost").configure_cert(context)
        self.tls = ScriptedServer(self._terminate, tls=context)
        self.proxy: ScriptedProxy | None = None
        self.egress: ScriptedServer | None = None

    async def start(self) -> None:
        await self.tls.__aenter__()
        self.proxy = ScriptedProxy(self.tls.port)
        self.egress = ScriptedServer(self.proxy)
        await self.egress.__aenter__()

    async def stop(self) -> None:
        assert self.egress is not None
        await self.egress.__aexit__()
        await self.tls.__aexit__()

    async def _terminate(self, peer: Peer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.fake_port)
        await asyncio.gather(pipe(peer.reader, writer), pipe(reader, peer.writer))


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def edge(fake_a: Fake, authority: trustme.CA) -> Iterator[Edge]:
    thread = LoopThread()
    edge = Edge(fake_a, authority)
    thread.run(edge.start())
    try:
        yield edge
    finally:
        thread.run(edge.stop())
        thread.close()


def tls_backend(fake: Fake, edge: Edge, **extra: Any) -> dict[str, Any]:
    assert edge.egress is not None
    return backend(
        fake,
        UPSTREAM_KEY_A,
        url=f"https://localhost:{edge.tls.port}/v1",
        proxy=f"http://proxy-user:{PROXY_PASSWORD}@127.0.0.1:{edge.egress.port}",
        **extra,
    )


def test_https_through_a_connect_proxy_json_and_stream(
    start_router: RouterFactory, fake_a: Fake, edge: Edge, authority: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    models = {"gpt-4o": {"backends": [tls_backend(fake_a, edge, tls={"ca_file": str(ca_file)})]}}
    router = start_router(make_config(models))
    with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
        answer = sdk.chat.completions.create(model="gpt-4o", messages=HELLO)
        stream = sdk.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
        chunks = [chunk for chunk in stream if chunk.choices]
    assert answer.choices[0].message.content
    assert chunks
    seen = fake_a.requests()
    assert [r["headers"]["authorization"] for r in seen] == [f"Bearer {UPSTREAM_KEY_A}"] * 2
    assert edge.proxy is not None
    credential = base64.b64encode(f"proxy-user:{PROXY_PASSWORD}".encode()).decode()
    assert len(edge.proxy.heads) == 1  # one tunnel, kept alive for both requests
    assert f"Proxy-Authorization: Basic {credential}".encode() in edge.proxy.heads[0]
    assert edge.proxy.heads[0].startswith(b"CONNECT localhost:%d " % edge.tls.port)
    assert_clean(router.lines, [PROXY_PASSWORD, credential, UPSTREAM_KEY_A, CLIENT_KEY])


def test_an_untrusted_certificate_is_refused_and_verify_false_is_warned(
    start_router: RouterFactory, fake_a: Fake, edge: Edge
) -> None:
    models = {"gpt-4o": {"backends": [tls_backend(fake_a, edge)]}}
    router = start_router(make_config(models))
    response = httpx.post(
        f"{router.base_url}/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert response.status_code == 502
    assert response.json()["error"]["message"] == f"Could not connect to backend {fake_a.name}."
    assert fake_a.requests() == []
    assert_clean([*router.lines, response.text], [PROXY_PASSWORD, UPSTREAM_KEY_A])

    models = {"gpt-4o": {"backends": [tls_backend(fake_a, edge, tls={"verify": False})]}}
    router = start_router(make_config(models))
    warnings = [r for r in router.records() if r.get("level") == "warning"]
    assert [(r["msg"], r["backend"]) for r in warnings] == [
        ("TLS certificate verification is off (tls.verify: false)", fake_a.name)
    ]
    with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
        assert sdk.chat.completions.create(model="gpt-4o", messages=HELLO).choices
