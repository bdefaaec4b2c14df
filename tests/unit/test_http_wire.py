"""The sans-IO half of the upstream client: request bytes out, response events in."""

from __future__ import annotations

import gzip

import pytest

from router.upstream.http.errors import BrokenBodyError, ProtocolError
from router.upstream.http.wire import HeaderBlock, ResponseReader, encode_request


class Recorder:
    """A Sink that writes down what the reader reports."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.chunks: list[bytes] = []
        self.ended: bool | None = None  # keep_alive, once ended

    def on_head(self, status: int, headers: dict[str, str]) -> None:
        self.status, self.headers = status, headers

    def on_data(self, data: bytes) -> None:
        self.chunks.append(data)
        self.body += data

    def on_end(self, keep_alive: bool) -> None:
        self.ended = keep_alive


def parse(*pieces: bytes, eof: bool = False) -> Recorder:
    reader = ResponseReader()
    sink = Recorder()
    reader.sink = sink
    for piece in pieces:
        reader.feed(piece)
    if eof:
        reader.eof()
    return sink


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def test_request_head_has_host_length_and_asks_for_identity() -> None:
    data = encode_request("POST", "/v1/chat?x=1", "api.example:8443", {"X-A": "1"}, b"{}")
    assert data == (
        b"POST /v1/chat?x=1 HTTP/1.1\r\nHost: api.example:8443\r\nContent-Length: 2\r\n"
        b"X-A: 1\r\nAccept-Encoding: identity\r\n\r\n{}"
    )


def test_request_keeps_an_accept_encoding_it_is_given() -> None:
    data = encode_request("POST", "/", "h", {"accept-encoding": "gzip"}, b"")
    assert b"identity" not in data
    assert b"accept-encoding: gzip\r\n" in data


@pytest.mark.parametrize("name", ["accept-encoding", "Accept-Encoding", "ACCEPT-encoding"])
def test_request_keeps_an_accept_encoding_in_any_case(name: str) -> None:
    data = encode_request("POST", "/", "h", {"X-Accept-Encoding": "x", name: "br"}, b"")
    assert b"identity" not in data
    assert f"{name}: br\r\n".encode() in data


def test_request_asks_for_identity_past_names_like_accept_encoding() -> None:
    headers = {"Accept-Encodings": "x", "accept-encodinx": "y", "X-Accept-Encoding": "z"}
    assert encode_request("POST", "/", "h", headers, b"").endswith(
        b"X-Accept-Encoding: z\r\nAccept-Encoding: identity\r\n\r\n"
    )


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb"])
def test_request_refuses_line_breaks_in_headers(value: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_request("POST", "/", "h", {"User-Agent": value}, b"")


def test_a_clients_own_headers_come_last_and_win_over_a_requests() -> None:
    # A backend's credential is encoded once (HeaderBlock) and never sent twice: the
    # request's header of the same name is dropped.
    own = HeaderBlock.of({"Authorization": "Bearer up", "User-Agent": "router"})
    headers = {"User-Agent": "sdk", "Accept": "*/*"}
    data = encode_request("POST", "/v1/chat", "h", headers, b"{}", own)
    assert data == (
        b"POST /v1/chat HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nAccept: */*\r\n"
        b"Authorization: Bearer up\r\nUser-Agent: router\r\n"
        b"Accept-Encoding: identity\r\n\r\n{}"
    )
    assert headers == {"User-Agent": "sdk", "Accept": "*/*"}  # the caller's mapping untouched


def test_a_clients_own_accept_encoding_is_kept() -> None:
    own = HeaderBlock.of({"accept-ENCODING": "br"})
    data = encode_request("POST", "/", "h", {"X-A": "1"}, b"", own)
    assert b"identity" not in data
    assert data.endswith(b"X-A: 1\r\naccept-ENCODING: br\r\n\r\n")


@pytest.mark.parametrize("headers", [{"X-Key": "a\r\nX-Injected: 1"}, {"X\nKey": "a"}])
def test_a_clients_own_headers_are_checked_once_made(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="line break"):
        HeaderBlock.of(headers)


def test_head_fed_one_byte_at_a_time() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Two: a\r\nx-two: b\r\n"
    raw += b"Content-Length: 5\r\n\r\nhello"
    sink = parse(*bytewise(raw))
    assert sink.status == 200
    assert sink.headers["content-type"] == "text/plain"
    assert sink.headers["x-two"] == "a, b"
    assert sink.body == b"hello"
    assert sink.ended is True


def test_header_names_in_any_case_on_one_connection_past_the_names_it_remembers() -> None:
    # A reader remembers the names its upstream sends: each casing is its own entry, the
    # keys stay lower-case, and names past the bound still come out right.
    reader = ResponseReader()
    for round_ in range(3):
        names = [f"X-Name-{round_}-{i}" for i in range(40)]
        raw = b"HTTP/1.1 200 OK\r\nContent-Type: a\r\ncontent-type: b\r\nCONTENT-TYPE:\t\xe9 \r\n"
        raw += "".join(f"{name}: {i}\r\n" for i, name in enumerate(names)).encode()
        raw += b"Content-Length: 0\r\n\r\n"
        sink = Recorder()
        reader.sink = sink
        reader.feed(raw)
        assert sink.headers == {
            "content-type": "a, b, \xe9 ",
            **{name.lower(): str(i) for i, name in enumerate(names)},
            "content-length": "0",
        }
        assert sink.ended is True


def test_only_the_headers_the_router_reads_are_kept() -> None:
    # Content and framing, retry-after, x-* and openai-*: every header the router reads. The
    # site's own (a dozen on an OpenAI answer) cost a name lookup and are dropped unread.
    raw = (
        b"HTTP/1.1 429 Too Many Requests\r\nDate: Sat, 09 May 2026 07:34:55 GMT\r\n"
        b"Server: cloudflare\r\nConnection: keep-alive\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"CF-RAY: 8c\r\nAlt-Svc: h3\r\nStrict-Transport-Security: max-age=1\r\nVary: Origin\r\n"
        b"Content-Type: application/json\r\nRetry-After: 3\r\nretry-after-ms: 2500\r\n"
        b"X-Request-Id: req_1\r\nx-ratelimit-remaining-requests: 0\r\n"
        b"openai-processing-ms: 12\r\nOpenAI-Version: 2020-10-01\r\nContent-Length: 2\r\n\r\n{}"
    )
    reader = ResponseReader()
    for _ in range(2):  # learning the names, then knowing them
        sink = Recorder()
        reader.sink = sink
        reader.feed(raw)
        assert sink.headers == {
            "content-type": "application/json",
            "retry-after": "3",
            "retry-after-ms": "2500",
            "x-request-id": "req_1",
            "x-ratelimit-remaining-requests": "0",
            "openai-processing-ms": "12",
            "openai-version": "2020-10-01",
            "content-length": "2",
        }
        assert sink.body == b"{}"
        assert sink.ended is True


def test_chunked_with_extensions_and_trailers() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name=value;flag\r\nhello\r\n6 ;quoted="a b"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    for pieces in ([raw], bytewise(raw)):
        sink = parse(*pieces)
        assert sink.body == b"hello world"
        assert sink.ended is True
        assert "x-trailer" not in sink.headers


def test_interim_answers_are_skipped() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )
    sink = parse(raw)
    assert sink.status == 201
    assert "link" not in sink.headers
    assert sink.body == b"ok"


def test_an_interim_answer_with_a_body_is_refused() -> None:
    # A 1xx has no content (RFC 9110 §15.2); llhttp still reads a Content-Length on one it has
    # no name for. Those bytes must never reach the final answer's body, ahead of its head.
    raw = (
        b"HTTP/1.1 150 Unknown\r\nContent-Length: 3\r\n\r\nabc"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    with pytest.raises(ProtocolError):
        parse(raw)


def test_interim_head_trailers_and_repeats_split_anywhere_on_a_reused_reader() -> None:
    # A 1xx, then the final head with a repeated field, a chunked body and trailers: cut at
    # every byte and at every single point, each response parsed by the same reader in turn.
    raw = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nX-Two: a\r\nx-two: b\r\nLink:  c\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Two: trailer\r\nX-Trailer: t\r\n\r\n"
    )
    reader = ResponseReader()
    cuts = [bytewise(raw)] + [[raw[:i], raw[i:]] for i in range(1, len(raw))]
    for pieces in cuts:
        sink = Recorder()
        reader.sink = sink
        for piece in pieces:
            reader.feed(piece)
        assert sink.status == 200
        assert sink.headers == {"x-two": "a, b", "transfer-encoding": "chunked"}
        assert sink.body == b"abc"
        assert sink.ended is True


def test_connection_close_and_http10_end_keep_alive() -> None:
    close = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    old = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert close.ended is False
    assert old.ended is False


def test_body_without_length_ends_at_eof() -> None:
    sink = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nab", b"cd", eof=True)
    assert sink.body == b"abcd"
    assert sink.ended is False


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
    ],
    ids=["mid-chunk", "before-last-chunk", "short-of-length"],
)
def test_a_cut_body_is_an_error(raw: bytes) -> None:
    with pytest.raises(BrokenBodyError):
        parse(raw, eof=True)


def test_malformed_head_and_malformed_chunk() -> None:
    with pytest.raises(ProtocolError):
        parse(b"HTTP/1.1 2x0 OK\r\n\r\n")
    with pytest.raises(BrokenBodyError):
        parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")


def test_an_unasked_gzip_body_is_decoded_once() -> None:
    packed = gzip.compress(b'{"usage": 1}')
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
    sink = parse(*bytewise(raw + packed))
    assert sink.body == b'{"usage": 1}'
    assert "content-encoding" not in sink.headers
    assert "content-length" not in sink.headers


def test_other_codings_pass_through_labelled() -> None:
    sink = parse(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nxyz")
    assert sink.body == b"xyz"
    assert sink.headers["content-encoding"] == "br"


def test_a_corrupt_gzip_body_is_a_broken_body() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope"
    with pytest.raises(BrokenBodyError):
        parse(raw)


def test_a_response_nobody_asked_for_is_refused() -> None:
    reader = ResponseReader()
    reader.sink = Recorder()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
    with pytest.raises(ProtocolError):
        reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
