"""The edge's pure parts: parser errors to OpenAI errors, raw answers, header values as bytes."""

from __future__ import annotations

import hashlib
from typing import cast

import h11
import orjson
import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, InvalidHeader, LineTooLong
from multidict import CIMultiDict, CIMultiDictProxy

from router.auth.keys import digest
from router.errors import RequestTimeout, ServiceUnavailable
from router.handlers.common import is_text
from router.handlers.proxy import forward_headers
from router.protocol import BodyTimedOut
from router.protocol_errors import parse_error, raw_answer

SECRET = "sk-secret-in-the-line-0123456789"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (LineTooLong(b"X-Long: " + SECRET.encode(), 8190), 431),
        (BadHttpMessage("Too many headers received"), 431),
        (InvalidHeader(b"Bad Header: Bearer " + SECRET.encode()), 400),
        (BadHttpMethod(f"G\udcffT {SECRET}"), 400),
        (BadHttpMessage(f"Invalid header value char: {SECRET}"), 400),
        (None, 400),
    ],
)
def test_parser_errors_become_openai_errors_that_quote_nothing(
    exc: BaseException | None, status: int
) -> None:
    error = parse_error(400, exc)
    assert error.status == status
    assert SECRET[:12] not in error.message


def test_an_error_outside_any_handler_is_a_plain_500() -> None:
    assert parse_error(500, RuntimeError(SECRET)).status == 500
    assert SECRET[:12] not in parse_error(500, RuntimeError(SECRET)).message


def test_raw_answers_are_valid_http_with_json_and_close() -> None:
    busy = ServiceUnavailable("busy", code="too_many_connections", headers={"retry-after": "1"})
    for error in (busy, RequestTimeout("slow")):
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        conn.receive_data(raw_answer(error))
        response = conn.next_event()
        assert isinstance(response, h11.Response)
        assert response.status_code == error.status
        headers = dict(response.headers)
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"connection"] == b"close"
        body = conn.next_event()
        assert isinstance(body, h11.Data)
        assert orjson.loads(body.data) == error.to_dict()


def test_a_stalled_body_is_a_408_and_a_timeout_for_aiohttps_lingering_read() -> None:
    error = BodyTimedOut("stalled")
    assert isinstance(error, TimeoutError)
    assert error.status == 408
    assert error.closes


def test_header_values_are_bytes_that_may_not_be_text() -> None:
    raw = b"sk-\xff\xfe-key"
    value = raw.decode("utf-8", "surrogateescape")  # as aiohttp decodes header bytes
    assert not is_text(value)
    assert is_text("sk-plain")
    assert is_text("sk-ünïcödé")
    assert digest(value) == hashlib.sha256(raw).digest()  # the bytes sent; no UnicodeError


class _Request:
    """What ``forward_headers`` reads of a request: its headers, as aiohttp decoded them
    (``make_mocked_request`` cannot carry bytes that are not UTF-8)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = CIMultiDictProxy(CIMultiDict(headers))


def test_forwarded_headers_drop_values_that_are_not_text() -> None:
    request = _Request({"User-Agent": "agent/\udcff", "Accept": "application/json"})
    forwarded = forward_headers(cast(web.Request, request), "req_1")
    assert "User-Agent" not in forwarded
    assert forwarded["Accept"] == "application/json"
    orjson.dumps(forwarded)  # every value encodes
