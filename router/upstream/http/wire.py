"""HTTP/1.1 on the wire, without I/O (the h11 way): request bytes out, response events in.

:func:`encode_request` writes a request head and body as one ``bytes``; a client's own headers
(a backend's credential) are a :class:`HeaderBlock`, encoded and checked once. A
:class:`ResponseReader` feeds received bytes to llhttp (``httptools``, the parser uvicorn uses)
and reports the final response to its :class:`Sink`: its head (the headers the router reads),
its body as it arrives (decoded if the upstream compressed it unasked), its end and whether the
connection may be reused.
Interim 1xx answers are skipped (RFC 9110 §15.2: a client must be able to parse one it did not
expect), chunk extensions are ignored, trailers are read and dropped.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httptools

from router.upstream.http.errors import BrokenBodyError, ProtocolError

# Codings an upstream may use even though the router asks for identity; others pass through.
_DECODED = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}

# Header names a reader remembers: an upstream sends a few dozen distinct ones; one that makes
# up new names costs a bounded dict, then the plain decode.
_NAMES_KEPT = 64

# The response headers a reader keeps, by the start of their lower-case name: all the router
# reads of an answer. Its framing and content (content-*, transfer-encoding), retry-after(-ms),
# and the x-* and openai-* ones (request ids, x-ratelimit-* quotas, versions, timings). The
# others (date, server, connection, cookies, CDN, CORS and security policies: a dozen on an
# OpenAI answer) describe the provider's site, not the answer: each costs a lookup, no more.
_KEPT = ("content-", "transfer-encoding", "retry-after", "x-", "openai-")

_ACCEPT_ENCODING_LENGTH = len("accept-encoding")

_IDENTITY = "Accept-Encoding: identity\r\n"


def _fields(headers: Mapping[str, str]) -> tuple[str, bool]:
    """The header lines, and whether one is an Accept-Encoding (in any case).

    Raise ValueError if a name or value holds a line break: it would inject a header."""
    lines = ""
    coded = False
    for name, value in headers.items():  # a loop, not a comprehension: no function call
        lines += f"{name}: {value}\r\n"
        # The length first: no other name is lower-cased (nor the whole text, as it was).
        if len(name) == _ACCEPT_ENCODING_LENGTH and name.lower() == "accept-encoding":
            coded = True
    # Each header adds exactly one CR and one LF: any other is an injected line.
    if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
        raise ValueError("a header name or value holds a line break")
    return lines, coded


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """Headers sent with every request of a client (a backend's credential, an egress proxy's),
    encoded and checked once. They win over a request's header of the same name."""

    lines: str
    names: frozenset[str]
    coded: bool  # one of them is an Accept-Encoding

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> HeaderBlock:
        lines, coded = _fields(headers)
        return cls(lines, frozenset(headers), coded)


NO_HEADERS = HeaderBlock("", frozenset(), False)


def encode_request(
    method: str,
    target: str,
    host: str,
    headers: Mapping[str, str],
    body: bytes,
    own: HeaderBlock = NO_HEADERS,
) -> bytes:
    """One request as bytes: the head (Host, Content-Length, ``headers``, then ``own``, which
    win over a header of ``headers`` of the same name) and the body.

    Keep-alive is HTTP/1.1's default, so no Connection header. ``Accept-Encoding: identity``
    unless a header names one: the router reads usage out of bodies and hands them on as they
    are, so it asks for them uncompressed."""
    if not own.names.isdisjoint(headers):
        headers = {name: value for name, value in headers.items() if name not in own.names}
    lines, coded = _fields(headers)
    identity = "" if coded or own.coded else _IDENTITY
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        f"{lines}{own.lines}{identity}\r\n"
    )
    return head.encode("utf-8", "surrogateescape") + body


class Sink(Protocol):
    """Where a :class:`ResponseReader` reports the response it parses."""

    def on_head(self, status: int, headers: dict[str, str]) -> None: ...

    def on_data(self, data: bytes) -> None: ...

    def on_end(self, keep_alive: bool) -> None: ...


class ResponseReader:
    """Parses the responses of one connection, one after another: set :attr:`sink` to where
    the next one goes as its request is sent."""

    __slots__ = (
        "_decoder",
        "_headers",
        "_interim",
        "_names",
        "_parser",
        "in_body",
        "sink",
        "until_eof",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        # RFC 9112 §7.1.1 allows whitespace before a chunk extension's ";" (BWS); llhttp only
        # accepts it leniently. A client reading its own upstream has no smuggling to fear.
        self._parser.set_dangerous_leniencies(lenient_spaces_after_chunk_size=True)
        self.sink: Sink | None = None  # until the response it expects has ended
        self._headers: dict[str, str] = {}
        # The header names this connection's upstream sends, as the keys they become ("" for
        # those not kept): a dict lookup instead of a decode and a lower-casing per header.
        self._names: dict[bytes, str] = {}
        self._interim = False
        self._decoder: zlib._Decompress | None = None
        self.in_body = False  # the final head arrived, its body has not ended
        self.until_eof = False  # that body has no length: it ends when the peer closes

    def feed(self, data: bytes | memoryview) -> None:
        """Parse received bytes; raise ProtocolError (head) or BrokenBodyError (body)."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise ProtocolError("unexpected protocol upgrade") from None
        except httptools.HttpParserCallbackError as exc:
            # One of ours (a corrupt compressed body, a sink's own error), wrapped by httptools.
            cause = exc.__context__
            raise (cause if cause is not None else exc) from None
        except httptools.HttpParserError as exc:
            if self.in_body:
                raise BrokenBodyError(f"malformed body: {exc}") from None
            raise ProtocolError(f"malformed response: {exc}") from None

    def eof(self) -> None:
        """The peer closed: that ends a body without a length; any other body is cut."""
        if not self.in_body:
            return
        if not self.until_eof:
            raise BrokenBodyError("the body ended before its length or last chunk")
        self.on_message_complete(keep_alive=False)

    # llhttp callbacks (httptools looks them up by name once, at construction).

    def on_header(self, name: bytes, value: bytes) -> None:
        key = self._names.get(name)
        if key is None:
            key = self._learn(name)
        if not key:  # a header the router never reads (see _KEPT)
            return
        headers = self._headers
        if key in headers:
            headers[key] = f"{headers[key]}, {value.decode('latin-1')}"
        else:
            headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer: the final one follows on the same connection
            self._interim = True
            self._headers = {}
            return
        headers = self._headers
        self._headers = {}  # where trailers go, unread: on_header need not tell them apart
        self.in_body = True
        self.until_eof = not self._parser.should_keep_alive() and not (
            "content-length" in headers or "transfer-encoding" in headers
        )
        coding = headers.get("content-encoding")
        if coding is not None and coding.lower() in _DECODED:
            self._decoder = zlib.decompressobj(_DECODED[coding.lower()])
            del headers["content-encoding"]
            headers.pop("content-length", None)  # the length of what we no longer hand on
        if self.sink is None:  # an answer to no request: the connection is out of step
            raise ProtocolError("a response nobody asked for")
        self.sink.on_head(status, headers)

    def on_body(self, body: bytes) -> None:
        assert self.sink is not None
        if self._interim:  # llhttp reads a length it knows no meaning for (1xx beyond 103)
            raise ProtocolError("an interim (1xx) answer with a body")
        if self._decoder is None:
            self.sink.on_data(body)
            return
        try:
            data = self._decoder.decompress(body)
        except zlib.error:
            raise BrokenBodyError("the compressed body is corrupt") from None
        if data:
            self.sink.on_data(data)

    def on_message_complete(self, keep_alive: bool | None = None) -> None:
        """The message ended; ``keep_alive`` as llhttp says, unless given (an end at EOF).

        The reader is left as new for the next response (one that breaks off leaves a
        connection nobody reuses)."""
        if self._interim:
            self._interim = False
            return
        if keep_alive is None:
            keep_alive = self._parser.should_keep_alive()
        sink, self.sink = self.sink, None
        self.in_body = False
        if self._headers:  # trailers, unread
            self._headers = {}
        assert sink is not None
        decoder = self._decoder
        if decoder is not None:
            self._decoder = None
            if not decoder.eof:
                raise BrokenBodyError("the compressed body is cut")
            rest = decoder.flush()
            if rest:
                sink.on_data(rest)
        sink.on_end(keep_alive)

    def _learn(self, name: bytes) -> str:
        """A header name as a key: lower-case text (a token is ASCII), or "" for one that is
        not kept; remembered as sent."""
        key = name.decode().lower()
        if not key.startswith(_KEPT):
            key = ""
        if len(self._names) < _NAMES_KEPT:
            self._names[name] = key
        return key
