"""Hostile HTTP/1.1 requests as raw bytes (Hypothesis strategies), and a raw-socket client.

The requests are what careless or malicious clients send and what HTTP client libraries refuse
to: header names and values that are not text (invalid UTF-8, control bytes), lines over the
parser's limit, malformed lines that carry a secret (``Bad Header: Bearer sk-…``), bad or
duplicate ``Content-Length``, bad chunked framing, bodies that are not JSON, bodies over the
limit, bad methods, paths and versions. The secrets in play ride along in many of them, so a
server that echoes a request or logs its bytes is caught by the scan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace

import h11
from hypothesis import strategies as st

_CHAT = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
_STREAM = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}'
_EMBED = b'{"model":"text-embedding-3-small","input":"hi"}'
_NEW_KEY = b'{"name":"hostile","models":["*"]}'
_ODD_PATHS = (b"*", b"http://x/v1/models", b"/v1/models%FF%00", b"v1/models", b"/v1/nothing")
_METHODS = (b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"TRACE")
_BAD_METHODS = (b"G\xffT", b"PO ST", b"", b"\x16\x03\x01", b"GET\x00", b"get" * 50)
_VERSIONS = (b"HTTP/1.1",) * 6 + (b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b"HTTP/9", b"")
_NAMES = (b"Content-Type", b"Accept", b"OpenAI-Beta", b"User-Agent", b"X-Trace", b"Cookie")
_INVALID_UTF8 = (b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80")
_BAD_LENGTHS = (b"abc", b"-1", b"1e3", b"0x10", b" 5 5", b"5, 6", b"99999999999999999999999")
_BAD_CHUNKS = (
    b"zz\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello0\r\n\r\n",
    b"ffffffffffffffffff\r\nx\r\n",
    b"5;" + b"e" * 9000 + b"\r\nhello\r\n0\r\n\r\n",
    b"-5\r\nhello\r\n0\r\n\r\n",
    b"5\nhello\n0\n\n",
)


@dataclass(frozen=True)
class Hostile:
    """One request as it goes on the wire, and what the client will expect back."""

    raw: bytes
    method: bytes
    path: bytes


@dataclass(frozen=True)
class _Spec:
    """A request before it is written; ``framing`` None means a correct Content-Length."""

    method: bytes
    path: bytes
    body: bytes = b""
    version: bytes = b"HTTP/1.1"
    authorization: bytes | None = None
    headers: tuple[bytes, ...] = ()
    framing: tuple[bytes, ...] | None = None
    close: bool = True
    cut: int | None = None  # the head stops after this many bytes and never ends: 408

    def wire(self) -> Hostile:
        lines = [self.method + b" " + self.path + b" " + self.version, b"Host: router"]
        if self.authorization is not None:
            lines.append(b"Authorization: " + self.authorization)
        lines += self.headers
        if self.framing is not None:
            lines += self.framing
        elif self.body:
            lines.append(b"Content-Length: %d" % len(self.body))
        if self.close:
            lines.append(b"Connection: close")
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        if self.cut is not None:
            return Hostile(head[: min(self.cut, len(head) - 2)], self.method, self.path)
        return Hostile(head + self.body, self.method, self.path)


# What a client means to do: the base every hostile request is a mutation of.
_OPERATIONS = (
    _Spec(b"POST", b"/v1/chat/completions", _CHAT),
    _Spec(b"POST", b"/v1/chat/completions", _STREAM),
    _Spec(b"POST", b"/v1/embeddings", _EMBED),
    _Spec(b"POST", b"/v1/responses", b'{"model":"gpt-4o","input":"hi"}'),
    _Spec(b"GET", b"/v1/models"),
    _Spec(b"GET", b"/v1/models/gpt-4o"),
    _Spec(b"HEAD", b"/v1/models"),
    _Spec(b"GET", b"/admin/keys"),
    _Spec(b"POST", b"/admin/keys", _NEW_KEY),
    _Spec(b"DELETE", b"/admin/keys/key_0123"),
    _Spec(b"GET", b"/metrics"),
)


def requests(secrets: dict[str, str], max_body: int) -> st.SearchStrategy[Hostile]:
    """Hostile requests: a meaningful request with the right key (``secrets``: ``client``,
    ``admin``, ``metrics``), and up to two mutations from what careless and malicious clients
    send."""
    keys = [secrets[name].encode() for name in ("client", "admin", "metrics")]
    return st.builds(
        _mutated,
        st.sampled_from(_OPERATIONS),
        st.just(keys),
        st.lists(_mutation(keys, max_body), max_size=2),
        st.integers(0, 9),
    )


Mutation = Callable[[_Spec], _Spec]


def _mutated(base: _Spec, keys: list[bytes], mutations: list[Mutation], keep: int) -> Hostile:
    client, admin, metrics = keys
    key = {b"/admin": admin, b"/metri": metrics}.get(base.path[:6], client)
    spec = replace(base, authorization=b"Bearer " + key, close=keep > 0)  # 1 in 10 stays open
    for mutate in mutations:
        spec = mutate(spec)
    return spec.wire()


def _set(**fields: object) -> Mutation:
    return lambda spec: replace(spec, **fields)  # type: ignore[arg-type]


def _add_header(line: bytes) -> Mutation:
    return lambda spec: replace(spec, headers=(*spec.headers, line))


def _mutation(keys: list[bytes], max_body: int) -> st.SearchStrategy[Mutation]:
    key = st.sampled_from(keys)
    junk = st.binary(min_size=1, max_size=30)
    return st.one_of(
        st.sampled_from(_BAD_METHODS).map(lambda m: _set(method=m)),
        st.sampled_from(_METHODS).map(lambda m: _set(method=m)),
        junk.map(lambda tail: _set(path=b"/v1/" + tail)),
        junk.map(lambda tail: _set(path=b"/admin/" + tail)),
        st.integers(8_000, 12_000).map(lambda n: _set(path=b"/v1/" + b"a" * n)),
        st.sampled_from(_ODD_PATHS).map(lambda p: _set(path=p)),
        st.sampled_from(_VERSIONS).map(lambda v: _set(version=v)),
        _header(key).map(_add_header),
        _header(key).map(_add_header),
        _body(max_body).map(lambda b: _set(body=b)),
        _framing(),
        st.integers(1, 200).map(lambda n: _set(cut=n)),
        _authorization(keys).map(lambda a: _set(authorization=a)),
    )


def _authorization(keys: list[bytes]) -> st.SearchStrategy[bytes | None]:
    key = st.sampled_from(keys)
    return st.one_of(
        st.none(),
        key.map(lambda k: b"Bearer " + k),
        st.sampled_from(_INVALID_UTF8).map(lambda b: b"Bearer sk-" + b),
        st.binary(max_size=40).map(lambda b: b"Bearer " + b),
        key.map(lambda k: b"Basic " + k),
        key,
    )


def _header(key: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """One header line (without CRLF): odd but well-formed, or broken in a way that holds a key."""
    value = st.one_of(
        st.binary(max_size=40),
        st.text(max_size=20).map(str.encode),
        st.sampled_from(_INVALID_UTF8),
    )
    return st.one_of(
        st.builds(lambda n, v: n + b": " + v, st.sampled_from(_NAMES), value),
        st.builds(lambda n, v: n + b": " + v, st.binary(min_size=1, max_size=16), value),
        key.map(lambda k: b"Bad Header: Bearer " + k),
        key.map(lambda k: b"Authorization Bearer " + k),
        key.map(lambda k: b"X-Key: " + k + b"\x00"),
        key.map(lambda k: b"\x7fX: " + k),
        key.map(lambda k: b" folded: " + k),
        st.builds(lambda k, n: b"X-Long: " + k + b"a" * n, key, st.integers(8_000, 9_000)),
        st.integers(100, 140).map(lambda n: b"\r\n".join(b"X-Many-%d: 1" % i for i in range(n))),
    )


def _body(max_body: int) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from((b"[1,2]", b"null", b"{", b'{"model":5}', b'{"model":"gpt-4o"}')),
        st.binary(max_size=120),
        st.sampled_from(_INVALID_UTF8).map(lambda b: b'{"model":"' + b + b'"}'),
        st.integers(max_body + 1, max_body + 5000).map(lambda n: b'{"x":"' + b"a" * n + b'"}'),
    )


def _framing() -> st.SearchStrategy[Mutation]:
    """Content-Length and Transfer-Encoding gone wrong."""

    def frame(*lines: bytes) -> Mutation:
        return lambda spec: replace(spec, framing=lines)

    def chunked(*extra: bytes) -> Mutation:
        return lambda spec: replace(
            spec, framing=(b"Transfer-Encoding: chunked", *extra), body=_chunked(spec.body)
        )

    def longer(spec: _Spec) -> _Spec:  # a body that never comes: the body timeout answers
        return replace(spec, framing=(b"Content-Length: %d" % (len(spec.body) + 50),))

    def doubled(spec: _Spec) -> _Spec:
        return replace(spec, framing=(b"Content-Length: %d" % len(spec.body), b"Content-Length: 1"))

    return st.one_of(
        st.sampled_from(_BAD_LENGTHS).map(lambda v: frame(b"Content-Length: " + v)),
        st.just(longer),
        st.just(doubled),
        st.just(chunked()),
        st.just(chunked(b"Content-Length: 3")),
        st.just(frame(b"Transfer-Encoding: gzip, chunked")),
        st.sampled_from(_BAD_CHUNKS).map(
            lambda c: lambda spec: replace(spec, framing=(b"Transfer-Encoding: chunked",), body=c)
        ),
        st.just(lambda spec: replace(spec, headers=(*spec.headers, b"Content-Encoding: gzip"))),
    )


def _chunked(payload: bytes) -> bytes:
    return (b"%x\r\n" % len(payload) + payload + b"\r\n" if payload else b"") + b"0\r\n\r\n"


@dataclass
class Answer:
    """What came back on one connection: each response's status, headers and body."""

    request: Hostile
    responses: list[tuple[int, dict[str, str], bytes]]
    raw: bytes


async def send(host: str, port: int, request: Hostile, deadline: float) -> Answer:
    """Write the request, read until the router closes the connection (or ``deadline`` s)."""
    reader, writer = await asyncio.open_connection(host, port)
    received = bytearray()
    try:
        writer.write(request.raw)
        async with asyncio.timeout(deadline):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionResetError:
        pass  # a refused request whose rest the router did not read: what came first counts
    except TimeoutError:
        pass  # the router never answered nor closed: no answer, which the test reports
    finally:
        writer.close()
    responses = parse_responses(bytes(received), "GET")
    if request.method == b"HEAD" and responses and responses[-1][0] == 0:
        responses = parse_responses(bytes(received), "HEAD")  # answered as HEAD: no body
    return Answer(request, responses, bytes(received))


def parse_responses(data: bytes, verb: str) -> list[tuple[int, dict[str, str], bytes]]:
    """Every complete response in ``data`` (h11, strict), in order; status 0 for one cut
    short. ``verb`` is the method h11 assumes (a parser error's answer has a body even for a
    HEAD: the router could not read the method)."""
    out: list[tuple[int, dict[str, str], bytes]] = []
    while data:
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method=verb, target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(data)
        conn.receive_data(b"")
        status, body = 0, bytearray()
        headers: dict[str, str] = {}
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:  # cut short: status 0 says so
                out.append((0, headers, bytes(body)))
                return out
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif event is h11.NEED_DATA or isinstance(
                event, h11.EndOfMessage | h11.ConnectionClosed
            ):
                break
        out.append((status, headers, bytes(body)))
        data = conn.trailing_data[0]
        if not isinstance(event, h11.EndOfMessage):
            break
    return out
