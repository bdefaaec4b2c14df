"""The upstream client against scripted servers on loopback that write exact bytes."""

from __future__ import annotations

import asyncio
import base64
import gc
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trustme

from router.upstream.http import (
    BrokenBodyError,
    ConnectError,
    ConnectTimeout,
    DisconnectedError,
    HttpClient,
    Limits,
    ReadTimeout,
    Resolver,
    Response,
    client_context,
)
from router.upstream.http.connection import Connection
from router.upstream.http.response import HIGH_WATER
from tests.http_script import Peer, ScriptedProxy, ScriptedServer, on_uvloop

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
JSON = {"Content-Type": "application/json"}


def make_client(url: str, **kwargs: object) -> HttpClient:
    limits = kwargs.pop("limits", Limits(connect=10, first_byte=30, idle=30, total=60))
    return HttpClient(
        url,
        limit=kwargs.pop("limit", 8),  # type: ignore[arg-type]
        limits=limits,  # type: ignore[arg-type]
        resolver=Resolver(asyncio.get_running_loop()),
        **kwargs,  # type: ignore[arg-type]
    )


async def post(client: HttpClient, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    response = await client.request("POST", f"{url}/v1/chat/completions", JSON, body)
    try:
        return response.status, await response.read()
    finally:
        response.close()


async def read_to_end(response: Response) -> None:
    while await response.next_chunk():
        pass


def answer_each(reply: bytes) -> Callable[[Peer], Awaitable[None]]:
    async def script(peer: Peer) -> None:
        while await peer.request():
            await peer.send(reply)

    return script


async def wait_until(condition: Callable[[], bool], what: str, deadline: float = 20.0) -> None:
    """Poll ``condition`` until it holds (a deadline, not a sleep standing in for an event)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@on_uvloop
async def test_keep_alive_reuses_one_connection_and_sends_exact_request() -> None:
    async with ScriptedServer(answer_each(OK)) as server:
        client = make_client(server.url())
        for _ in range(3):
            assert await post(client, server.url(), b'{"a":1}') == (200, b"{}")
        await client.close()
    assert server.connections == 1


@on_uvloop
async def test_head_split_across_reads() -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        for piece in (b"HTTP/1.1 200 OK\r\nConte", b"nt-Length: 5\r\nX-A", b": b\r\n\r", b"\nhe"):
            await peer.send(piece)
            await asyncio.sleep(0.02)  # the scenario itself: bytes trickling in
        await peer.send(b"llo")

    async with ScriptedServer(script) as server:
        client = make_client(server.url())
        response = await client.request("POST", f"{server.url()}/v1/x", JSON, b"{}")
        assert response.headers["x-a"] == "b"
        assert await response.read() == b"hello"
        response.close()
        await client.close()


@on_uvloop
async def test_chunked_stream_with_extensions_and_trailers_arrives_chunk_by_chunk() -> None:
    events = [b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"]
    step = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index, event in enumerate(events):
            await peer.send(b"%x;n=%d\r\n%s\r\n" % (len(event), index, event))
            await step.wait()
            step.clear()
        await peer.send(b"0\r\nX-Checksum: abc\r\n\r\n")
        await peer.request()  # the connection stays usable after the trailers
        await peer.send(OK)

    async with ScriptedServer(script) as server:
        client = make_client(server.url())
        response = await client.request("POST", f"{server.url()}/v1/x", JSON, b"{}")
        received = []
        for _ in events:  # each event arrives while the server waits: no buffering, no delay
            received.append(await response.next_chunk())
            step.set()
        assert received == events
        assert await response.next_chunk() == b""
        response.close()
        assert await post(client, server.url()) == (200, b"{}")
        await client.close()
    assert server.connections == 1


@on_uvloop
@pytest.mark.parametrize(
    "cut",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n9\r\ndata",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ndata: 1\n\n",
    ],
    ids=["mid-chunk", "before-content-length"],
)
async def test_body_cut_is_an_error_after_the_bytes_that_came(cut: bytes) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(cut)
        peer.close()

    async with ScriptedServer(script) as server:
        client = make_client(server.url())
        response = await client.request("POST", f"{server.url()}/v1/x", JSON, b"{}")
        assert (await response.next_chunk()).startswith(b"data: 1")
        with pytest.raises(BrokenBodyError):
            await read_to_end(response)
        response.close()
        response = await client.request("POST", f"{server.url()}/v1/x", JSON, b"{}")
        with pytest.raises(BrokenBodyError):
            await response.read()
        await client.close()


@on_uvloop
async def test_connection_close_is_honoured() -> None:
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    closed: list[bool] = []

    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply)
        closed.append(await peer.closed_by_client())

    async with ScriptedServer(script) as server:
        client = make_client(server.url())
        assert await post(client, server.url()) == (200, b"{}")
        assert await post(client, server.url()) == (200, b"{}")
        await wait_until(lambda: len(closed) == 2, "both connections closed")
        await client.close()
    assert server.connections == 2
    assert closed == [True, True]


@on_uvloop
async def test_an_idle_connection_the_server_closed_is_never_used() -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(OK)
        peer.writer.write_eof()  # keep-alive was implied; the server closes while pooled
        await peer.request()  # a request sent on it anyway would be read (and counted) here

    async with ScriptedServer(script) as server:
        client = make_client(server.url())
        assert await post(client, server.url()) == (200, b"{}")
        await wait_until(lambda: "0 idle" in repr(client) or _idle_closed(client), "EOF seen")
        assert await post(client, server.url()) == (200, b"{}")
        await client.close()
    assert server.connections == 2
    assert [len(peer.requests) for peer in server.peers] == [1, 1]  # none sent on the stale one


def _idle_closed(client: HttpClient) -> bool:
    pool = client._pool
    return all(not conn.usable() for conn in pool._idle)


@on_uvloop
async def test_a_reused_connection_closed_before_any_answer_byte_is_retried_once_fresh() -> None:
    """The keep-alive race: the server drops the connection just as the request goes out."""
    seen: list[bytes] = []

    async def script(peer: Peer) -> None:
        if peer is server.peers[0]:
            seen.append(await peer.request())
            await peer.send(OK)
            seen.append(await peer.request())  # read, never answered: closed without a byte
            peer.writer.transport.abort()
            return
        await answer_each(OK)(peer)

    async with ScriptedServer(script) as server:
        client = make_client(server.url())
        assert await post(client, server.url()) == (200, b"{}")
        assert await post(client, server.url(), b'{"n":2}') == (200, b"{}")
        await client.close()
    assert server.connections == 2
    assert seen[1].endswith(b'{"n":2}')


@on_uvloop
async def test_no_retry_once_the_upstream_has_answered_or_on_a_fresh_connection() -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        if server.connections == 1:
            await peer.send(OK)
            await peer.request()
            await peer.send(b"HTTP/1.1 20")  # it had started answering
        peer.writer.transport.abort()

    async with ScriptedServer(script) as server:
        client = make_client(server.url())
        assert await post(client, server.url()) == (200, b"{}")
        with pytest.raises(DisconnectedError) as started:
            await post(client, server.url())
        assert started.value.received
        with pytest.raises(DisconnectedError) as fresh:  # a new connection, closed at once
            await post(client, server.url())
        assert not fresh.value.received
        await client.close()
    assert server.connections == 2


@on_uvloop
async def test_interim_1xx_answers_are_skipped() -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n" + OK
    )
    async with ScriptedServer(answer_each(reply)) as server:
        client = make_client(server.url())
        response = await client.request("POST", f"{server.url()}/v1/x", JSON, b"{}")
        assert response.status == 200
        assert "link" not in response.headers
        assert await response.read() == b"{}"
        response.close()
        await client.close()


@on_uvloop
async def test_a_slow_reader_pauses_the_upstream_and_memory_stays_bounded() -> None:
    piece = b"x" * 65536
    total = 64 * 1024 * 1024  # past any loopback socket buffers
    finished = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        for _ in range(total // len(piece)):
            await peer.send(piece)
        finished.set()

    async with ScriptedServer(script) as server:
        client = make_client(server.url())
        response = await client.request("POST", f"{server.url()}/v1/x", JSON, b"{}")
        first = await response.next_chunk()
        writer = server.peers[0].writer.transport
        # The server's own buffer fills: the kernel's are full because the client stopped
        # reading, not because it buffered the stream.
        await wait_until(lambda: writer.get_write_buffer_size() > 0, "the server to block")
        assert not finished.is_set()
        assert response._size <= HIGH_WATER + 256 * 1024
        received = len(first)
        while chunk := await response.next_chunk():
            received += len(chunk)
        assert received == total
        assert finished.is_set()
        response.close()
        await client.close()


@on_uvloop
async def test_first_byte_and_stream_idle_timeouts() -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        if server.connections == 2:
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab\n\r\n")
        await peer.closed_by_client()

    # Generous enough that a loaded machine never times out the answer that does come.
    limits = Limits(connect=5, first_byte=1.0, idle=0.5, total=30)
    async with ScriptedServer(script) as server:
        client = make_client(server.url(), limits=limits)
        with pytest.raises(ReadTimeout):
            await client.request("POST", f"{server.url()}/v1/x", JSON, b"{}")
        response = await client.request("POST", f"{server.url()}/v1/x", JSON, b"{}")
        assert await response.next_chunk() == b"ab\n"
        with pytest.raises(ReadTimeout):
            await response.next_chunk()
        response.close()
        await client.close()


@on_uvloop
async def test_each_exchange_on_a_kept_alive_connection_gets_its_own_limits() -> None:
    # The connection's one timer serves every exchange on it: the deadline an ended exchange
    # leaves armed (its idle gap) must neither fail the next one early nor let it wait forever.
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(OK)  # at once
        await peer.request()
        await asyncio.sleep(0.9)  # past the first exchange's idle gap, within first_byte
        await peer.send(OK)
        await peer.request()  # never answered
        await peer.closed_by_client()

    limits = Limits(connect=5, first_byte=2.0, idle=0.4, total=30)
    async with ScriptedServer(script) as server:
        client = make_client(server.url(), limits=limits)
        assert await post(client, server.url()) == (200, b"{}")
        assert await post(client, server.url()) == (200, b"{}")
        loop = asyncio.get_running_loop()
        asked = loop.time()
        with pytest.raises(ReadTimeout):
            await post(client, server.url())
        assert loop.time() - asked >= 2.0  # its own first-byte limit, not an older deadline
        await client.close()
    assert server.connections == 1


@on_uvloop
async def test_a_reader_busy_elsewhere_is_not_upstream_silence() -> None:
    gate = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\na\n\r\n")
        await gate.wait()
        await peer.send(b"2\r\nb\n\r\n0\r\n\r\n")

    limits = Limits(connect=5, first_byte=5, idle=0.5, total=30)
    async with ScriptedServer(script) as server:
        client = make_client(server.url(), limits=limits)
        response = await client.request("POST", f"{server.url()}/v1/x", JSON, b"{}")
        assert await response.next_chunk() == b"a\n"
        await asyncio.sleep(1.5)  # the reader writing to a slow client, three idle periods
        gate.set()
        assert await response.next_chunk() == b"b\n"
        assert await response.next_chunk() == b""
        response.close()
        await client.close()


@on_uvloop
async def test_a_full_pool_waits_within_the_connect_limit() -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.closed_by_client()

    limits = Limits(connect=1.0, first_byte=60, idle=60, total=None)
    async with ScriptedServer(script) as server:
        client = make_client(server.url(), limits=limits, limit=1)
        first = asyncio.ensure_future(post(client, server.url()))
        await wait_until(lambda: server.connections == 1, "the first request")
        with pytest.raises(ConnectTimeout):  # the only connection is busy
            await post(client, server.url())
        first.cancel()  # the client went away: its connection is dropped, the slot freed
        with pytest.raises(asyncio.CancelledError):
            await first
        second = asyncio.ensure_future(post(client, server.url()))
        await wait_until(lambda: server.connections == 2, "a new connection in the freed slot")
        second.cancel()
        await client.close()


@on_uvloop
async def test_total_limit() -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
        await peer.closed_by_client()

    limits = Limits(connect=5, first_byte=60, idle=60, total=0.3)
    async with ScriptedServer(script) as server:
        client = make_client(server.url(), limits=limits)
        with pytest.raises(ReadTimeout):
            await post(client, server.url())
        await client.close()


@on_uvloop
async def test_idle_connections_expire() -> None:
    closed = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(OK)
        if await peer.closed_by_client():
            closed.set()

    async with ScriptedServer(script) as server:
        client = make_client(server.url(), keepalive=0.2)
        assert await post(client, server.url()) == (200, b"{}")
        await asyncio.wait_for(closed.wait(), 20)
        assert "0 idle" in repr(client)
        await client.close()


@on_uvloop
async def test_lifo_reuse() -> None:
    gates = [asyncio.Event(), asyncio.Event()]

    async def script(peer: Peer) -> None:
        index = server.peers.index(peer)
        while await peer.request():
            await gates[index].wait()
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % index)

    async with ScriptedServer(script) as server:
        client = make_client(server.url())
        pending = [asyncio.ensure_future(post(client, server.url())) for _ in gates]
        await wait_until(lambda: server.connections == 2, "two connections")
        gates[0].set()
        assert await pending[0] == (200, b"0")
        gates[1].set()
        assert await pending[1] == (200, b"1")  # connection 1 went back to the pool last
        assert await post(client, server.url()) == (200, b"1")
        await client.close()


@on_uvloop
async def test_ipv6_loopback() -> None:
    async with ScriptedServer(answer_each(OK), host="::1") as server:
        client = make_client(server.url())
        assert await post(client, server.url()) == (200, b"{}")
        await client.close()


# TLS and proxies


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return path


def server_context(authority: trustme.CA, names: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)

    def record(sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        names.append(name or "")

    context.sni_callback = record
    return context


@on_uvloop
async def test_tls_verified_with_a_ca_file_sni_and_resumed_sessions(
    authority: trustme.CA, ca_file: Path
) -> None:
    names: list[str] = []
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    resumed: list[bool] = []

    async def script(peer: Peer) -> None:
        await peer.request()
        resumed.append(peer.writer.get_extra_info("ssl_object").session_reused)
        await peer.send(reply)

    tls = server_context(authority, names)
    async with ScriptedServer(script, tls=tls) as server:
        url = server.url("https", "localhost")
        client = make_client(url, tls=client_context(ca_file=str(ca_file)))
        for _ in range(3):  # Connection: close, so three handshakes
            assert await post(client, url) == (200, b"{}")
        await client.close()
    assert names == ["localhost"] * 3
    assert resumed == [False, True, True]


@on_uvloop
async def test_tls_refuses_an_unknown_ca_by_default_and_verify_false_accepts_it(
    authority: trustme.CA,
) -> None:
    tls = server_context(authority, [])
    async with ScriptedServer(answer_each(OK), tls=tls) as server:
        url = server.url("https", "localhost")
        client = make_client(url)  # the system store does not know the test CA
        with pytest.raises(ConnectError, match="not trusted"):
            await post(client, url)
        await client.close()
        client = make_client(url, tls=client_context(verify=False))
        assert await post(client, url) == (200, b"{}")
        await client.close()


@on_uvloop
async def test_https_through_a_connect_proxy(authority: trustme.CA, ca_file: Path) -> None:
    names: list[str] = []
    async with ScriptedServer(answer_each(OK), tls=server_context(authority, names)) as origin:
        proxy = ScriptedProxy(origin.port)
        async with ScriptedServer(proxy) as egress:
            url = origin.url("https", "localhost")
            port = origin.port
            client = make_client(
                url,
                tls=client_context(ca_file=str(ca_file)),
                proxy=f"http://user%40corp:p%3Ass@127.0.0.1:{egress.port}",
            )
            assert await post(client, url) == (200, b"{}")
            assert await post(client, url) == (200, b"{}")
            assert "proxy" in repr(client)
            assert "p:ss" not in repr(client)
            await client.close()
    basic = base64.b64encode(b"user@corp:p:ss")
    assert proxy.heads == [
        b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n"
        b"Proxy-Authorization: Basic %s\r\n\r\n" % (port, port, basic)
    ]
    assert names == ["localhost"]
    assert origin.connections == 1


@on_uvloop
async def test_plain_http_through_a_proxy_uses_absolute_uris() -> None:
    proxy = ScriptedProxy(0)
    async with ScriptedServer(proxy) as egress:
        client = make_client(
            "http://api.invalid:8080", proxy=f"http://u:pw@127.0.0.1:{egress.port}"
        )
        assert await post(client, "http://api.invalid:8080") == (200, b"{}")
        await client.close()
    head = proxy.heads[0]
    assert head.startswith(b"POST http://api.invalid:8080/v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nHost: api.invalid:8080\r\n" in head
    assert b"\r\nProxy-Authorization: Basic " + base64.b64encode(b"u:pw") + b"\r\n" in head


@on_uvloop
async def test_a_proxy_that_refuses_the_tunnel_is_a_connect_error(ca_file: Path) -> None:
    async with ScriptedServer(answer_each(b"HTTP/1.1 407 Auth\r\n\r\n")) as egress:
        client = make_client(
            "https://localhost:1",
            tls=client_context(ca_file=str(ca_file)),
            proxy=f"http://127.0.0.1:{egress.port}",
        )
        with pytest.raises(ConnectError, match="407"):
            await post(client, "https://localhost:1")
        await client.close()


@on_uvloop
async def test_connect_refused_and_unresolvable() -> None:
    client = make_client("http://127.0.0.1:1")
    with pytest.raises(ConnectError):
        await post(client, "http://127.0.0.1:1")
    await client.close()
    client = make_client("http://name.invalid")
    with pytest.raises(ConnectError, match="resolve"):
        await post(client, "http://name.invalid")
    await client.close()


@on_uvloop
async def test_close_closes_idle_connections_now_and_busy_ones_when_they_finish() -> None:
    gate = asyncio.Event()
    closed: list[int] = []

    async def script(peer: Peer) -> None:
        index = server.peers.index(peer)
        await peer.request()
        if index == 0:
            await gate.wait()
        await peer.send(OK)
        if await peer.closed_by_client():
            closed.append(index)

    async with ScriptedServer(script) as server:
        client = make_client(server.url())
        busy = asyncio.ensure_future(post(client, server.url()))  # connection 0, held
        await wait_until(lambda: server.connections == 1, "the busy connection")
        assert await post(client, server.url()) == (200, b"{}")  # connection 1, now idle
        await client.close()
        await wait_until(lambda: closed == [1], "the idle connection closed")
        gate.set()
        assert await busy == (200, b"{}")
        await wait_until(lambda: closed == [1, 0], "the busy one closed once done")
        with pytest.raises(ConnectError):
            await post(client, server.url())


@on_uvloop
async def test_a_closed_connection_is_freed_without_the_cyclic_collector() -> None:
    # A connection holds its timer, whose expiry is the connection's bound method: a cycle,
    # broken when the connection is lost, so its memory comes back by reference counting.
    async with ScriptedServer(answer_each(OK)) as server:
        client = make_client(server.url())
        assert await post(client, server.url()) == (200, b"{}")
        gc.collect()
        gc.disable()
        try:
            await client.close()
            await wait_until(
                lambda: not [obj for obj in gc.get_objects() if type(obj) is Connection],
                "the closed connection freed",
            )
        finally:
            gc.enable()
