"""Scripted faults: what can go wrong with an upstream, and the part applied before any byte.

A fault is a JSON object, given per request as the body's ``"fake"`` object or queued on the
instance with ``POST /_fake/faults``. Keys (all optional):

``delay_first_byte``  seconds to wait before the response headers
``chunk_delay``       seconds between stream events
``status``            answer this HTTP status with an OpenAI error body
``retry_after``       add a ``retry-after`` header; without ``status`` the answer is a 429
``cut_after``         stream: close the connection after N events; JSON: after half the body;
                      realtime: drop the connection after N server events
``drop``              close the connection without any response
``linger``            stream: seconds to keep the response open after its last event
``close_code``        realtime: close the WebSocket with this code (after ``cut_after`` events,
                      by default right after ``session.created``) instead of dropping it
``close_reason``      realtime: the reason sent with ``close_code``
``error_after``       stream: send an ``event: error`` after N events and end the stream there
``echo_key``          quote the credentials the request presented (``Authorization``, any
                      ``*-key`` or ``*-token`` header) in the error message, as some upstreams do
                      ("Incorrect API key provided: sk-..."); realtime: in an ``error`` event
                      right after ``session.created``

This module only parses and decides; ``call`` does the sleeping, writing and closing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from benchmarks.fake_upstream.wire import ApiError

# Messages OpenAI sends for these statuses, so logs on the router side look familiar.
_MESSAGES = {
    400: "Invalid request (scripted fault).",
    401: "Incorrect API key provided.",
    403: "You are not allowed to sample from this model (scripted fault).",
    404: "The requested resource does not exist (scripted fault).",
    429: "Rate limit reached for requests (scripted fault).",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway (scripted fault).",
    503: "The engine is currently overloaded, please try again later.",
    504: "Gateway timeout (scripted fault).",
}
_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
_CREDENTIALS = ("authorization", "proxy-authorization")


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted misbehaviour; the default instance is a healthy answer."""

    delay_first_byte: float = 0.0
    chunk_delay: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    cut_after: int | None = None
    drop: bool = False
    linger: float = 0.0
    close_code: int | None = None
    close_reason: str = ""
    error_after: int | None = None
    echo_key: bool = False

    @classmethod
    def parse(cls, raw: object, *, param: str = "fake") -> Fault:
        """Validate a JSON fault object; bad input is a 400 naming ``param``."""
        if not isinstance(raw, dict):
            raise ApiError(400, "A fault must be a JSON object.", param=param)
        unknown = sorted(set(raw) - FAULT_KEYS)
        if unknown:
            raise ApiError(400, f"Unknown fault keys: {', '.join(unknown)}.", param=param)
        return cls(
            delay_first_byte=_seconds(raw, "delay_first_byte", param) or 0.0,
            chunk_delay=_seconds(raw, "chunk_delay", param) or 0.0,
            status=_count(raw, "status", param),
            retry_after=_seconds(raw, "retry_after", param),
            cut_after=_count(raw, "cut_after", param),
            drop=bool(raw.get("drop", False)),
            linger=_seconds(raw, "linger", param) or 0.0,
            close_code=_close_code(raw, param),
            close_reason=_text(raw, "close_reason", param),
            error_after=_count(raw, "error_after", param),
            echo_key=bool(raw.get("echo_key", False)),
        )

    @property
    def error_status(self) -> int | None:
        if self.status is not None and self.status >= 400:
            return self.status
        return 429 if self.retry_after is not None else None


FAULT_KEYS = frozenset(Fault.__dataclass_fields__)
NO_FAULT = Fault()


def _seconds(raw: dict[str, Any], key: str, param: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ApiError(400, f"{key} must be a non-negative number.", param=f"{param}.{key}")
    return float(value)


def _count(raw: dict[str, Any], key: str, param: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, f"{key} must be a non-negative integer.", param=f"{param}.{key}")
    return value


def _close_code(raw: dict[str, Any], param: str) -> int | None:
    code = _count(raw, "close_code", param)
    if code is not None and not (1000 <= code < 5000):
        message = "close_code must be a WebSocket close code."
        raise ApiError(400, message, param=f"{param}.close_code")
    return code


def _text(raw: dict[str, Any], key: str, param: str) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or len(value.encode()) > 123:
        raise ApiError(400, f"{key} must be a string of at most 123 bytes.", param=f"{param}.{key}")
    return value


def error_response(fault: Fault, request: web.Request) -> web.Response | None:
    """The error answer a fault asks for, if any."""
    status = fault.error_status
    if status is None:
        return None
    headers = {} if fault.retry_after is None else {"retry-after": f"{fault.retry_after:g}"}
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    if status == 429:
        type_ = "requests"  # what OpenAI puts in "type" for a request-rate limit
    message = message_for(fault, request, _MESSAGES.get(status, f"Scripted fault: HTTP {status}."))
    return ApiError(
        status, message, type_=type_, code=_CODES.get(status), headers=headers
    ).response()


def message_for(fault: Fault, request: web.Request, message: str) -> str:
    """``message``, quoting the presented credentials if the fault says ``echo_key``."""
    if not fault.echo_key:
        return message
    presented = [
        f"{name}: {value}"
        for name, value in request.headers.items()
        if name.lower() in _CREDENTIALS or name.lower().endswith(("-key", "-token"))
    ]
    return f"{message} Credentials received: {'; '.join(presented) or 'none'}."


def stream_error(fault: Fault, request: web.Request) -> bytes:
    """The ``event: error`` a stream sends at ``error_after``."""
    message = message_for(fault, request, _MESSAGES[500])
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    return b"event: error\ndata: " + orjson.dumps({"error": error}) + b"\n\n"
