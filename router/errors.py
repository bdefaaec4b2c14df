"""The error tree, and its one rendering: OpenAI's error JSON.

Every error a client can see is one of these classes. Lower layers raise them; the edge renders
them (``router.edge``, and ``router.protocol`` for what aiohttp's HTTP parser refuses);
``router.upstream.errors`` is the one place the upstream clients' errors (our HTTP client's,
aiohttp's for WebSocket dials) are translated into them (httpx's ``map_httpcore_exceptions``
is the model)::

    RouterError                      {"error": {"message", "type", "param", "code"}}
    ├── InvalidRequest          400  invalid_request_error (param names the field)
    │   ├── PayloadTooLarge     413
    │   ├── RequestTimeout      408  the client sent its head or body too slowly (closes)
    │   └── HeadersTooLarge     431  a header line, or the header count, over the parser's limit
    ├── Unauthorized            401  invalid_api_key
    ├── ModelNotFound           404  model_not_found
    ├── NotFound                404  unknown route
    ├── MethodNotAllowed        405
    ├── RateLimited             429  rate_limit_exceeded (type names the limit: requests, tokens)
    ├── ServiceUnavailable      503  no backend could take the request
    ├── UpstreamError           502  a backend failed (connect, 5xx, broken body)
    │   └── UpstreamTimeout     504  a backend did not answer in time
    └── InternalError           500  a bug in the router (logged, never detailed to the client)

Messages never contain a secret: no client key, no upstream key, no upstream error body that
could echo one.
"""

from __future__ import annotations

from typing import ClassVar

import orjson


class RouterError(Exception):
    """Base of every client-visible error."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    # The connection is closed after this answer: the rest of the request cannot be trusted.
    closes: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    def to_dict(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


class InvalidRequest(RouterError):
    status = 400
    type = "invalid_request_error"


class PayloadTooLarge(InvalidRequest):
    status = 413
    default_code = "request_too_large"


class RequestTimeout(InvalidRequest):
    status = 408
    default_code = "request_timeout"
    closes = True


class HeadersTooLarge(InvalidRequest):
    status = 431
    default_code = "request_header_fields_too_large"
    closes = True


class Unauthorized(RouterError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class ModelNotFound(RouterError):
    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        # OpenAI's exact wording, so clients that match on it keep working.
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
        )


class NotFound(RouterError):
    status = 404
    type = "invalid_request_error"
    default_code = "unknown_url"


class MethodNotAllowed(RouterError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class RateLimited(RouterError):
    status = 429
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, kind: str, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
        self.kind = kind

    def to_dict(self) -> dict[str, object]:
        # OpenAI puts the exhausted limit in "type" ("requests" or "tokens").
        body = super().to_dict()
        error = body["error"]
        assert isinstance(error, dict)
        error["type"] = self.kind
        return body


class ServiceUnavailable(RouterError):
    status = 503
    default_code = "service_unavailable"


class UpstreamError(RouterError):
    status = 502
    default_code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


class InternalError(RouterError):
    status = 500
    default_code = "internal_error"


def wrong_type(param: str, expected: str, value: object) -> InvalidRequest:
    """OpenAI's error for a field of the wrong JSON type."""
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _json_type(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a decimal",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    return names.get(type(value), "null" if value is None else "a value")
