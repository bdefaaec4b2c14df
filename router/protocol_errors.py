"""What the edge answers without a handler: parser errors as OpenAI errors, and whole raw
answers for connections that have no request object (a stalled head, a refused connection).

The answers never quote the request: aiohttp's parser messages do (the offending bytes, a
client's ``Authorization`` line included), so each kind of parser error has its own words here.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    ContentLengthError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)

from router.errors import HeadersTooLarge, InternalError, InvalidRequest, RouterError

# What each parser error is called in the answer: never the parser's own message, which quotes
# the bytes it refused.
_PARSE_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (BadHttpMethod, "The request method is not valid HTTP."),
    (BadStatusLine, "The request line is not valid HTTP/1.1."),
    (InvalidURLError, "The request URL is not valid."),
    (InvalidHeader, "A request header is not valid HTTP/1.1."),
    (ContentLengthError, "The request's Content-Length is not valid."),
    (TransferEncodingError, "The request's chunked body or Transfer-Encoding is not valid."),
)
_TOO_MANY_HEADERS = "Too many headers received"  # aiohttp's message (both of its parsers)


def parse_error(status: int, exc: BaseException | None) -> RouterError:
    """The error for a request aiohttp answered before any handler ran."""
    if isinstance(exc, LineTooLong) or (
        isinstance(exc, BadHttpMessage) and exc.message == _TOO_MANY_HEADERS
    ):
        return HeadersTooLarge(
            "The request line or a header field is too long, or there are too many headers."
        )
    if status >= 500:
        return InternalError("The server had an error while processing your request.")
    message = next(
        (text for kind, text in _PARSE_ERRORS if isinstance(exc, kind)),
        "The request is not valid HTTP/1.1.",
    )
    return InvalidRequest(message)


def raw_answer(error: RouterError) -> bytes:
    """A whole HTTP/1.1 answer, for a connection that has no request object to answer."""
    body = error.to_json()
    lines = [
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in error.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body
