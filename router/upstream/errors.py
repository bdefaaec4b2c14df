"""The one seam where upstream trouble becomes router errors.

The HTTP client's exceptions (:mod:`router.upstream.http.errors`), aiohttp's (realtime
WebSocket dials) and upstream error statuses are translated here and nowhere else
(httpx's ``map_httpcore_exceptions`` is the model). Each translation says whether another backend
may be tried: :class:`Retryable` carries the client-facing error to raise if no retry succeeds.
Messages name the backend and the failure, never a credential or the upstream's error body (an
upstream 401 body can quote part of the router's own upstream key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from time import time

import aiohttp

from router.errors import (
    RateLimited,
    RouterError,
    UpstreamError,
    UpstreamTimeout,
)
from router.outcomes import ATTEMPT_FAILURES, AttemptFailure
from router.upstream.http import BrokenBodyError, ConnectError, DisconnectedError, HttpClientError

REASONS = ATTEMPT_FAILURES  # why an attempt failed: router.outcomes names them

TRANSPORT_ERRORS = (HttpClientError, aiohttp.ClientError, TimeoutError)
"""What the upstream clients raise when the transport fails: our HTTP client's errors, aiohttp's
for WebSocket dials, and a timeout (asyncio.timeout raises the builtin)."""


class Retryable(Exception):
    """This attempt failed in a way another backend may not; ``error`` is for the client."""

    def __init__(
        self, error: RouterError, reason: AttemptFailure, *, retry_after: float | None = None
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason  # a metric label: one of a few fixed words
        self.retry_after = retry_after


class PoolExhausted(Exception):
    """Every backend of the pool has been tried for this request."""


def from_exception(exc: BaseException, backend: str) -> Retryable:
    """Translate a transport failure before the first byte reached the client."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return Retryable(UpstreamTimeout(f"Backend {backend} did not answer in time."), "timeout")
    if isinstance(exc, ConnectError | aiohttp.ClientConnectorError):
        return Retryable(UpstreamError(f"Could not connect to backend {backend}."), "connect_error")
    if isinstance(exc, DisconnectedError | aiohttp.ServerDisconnectedError):
        return Retryable(UpstreamError(f"Backend {backend} closed the connection."), "disconnected")
    if isinstance(exc, BrokenBodyError | aiohttp.ClientPayloadError):
        message = f"Backend {backend} sent a broken response body."
        return Retryable(UpstreamError(message), "broken_body")
    message = f"Request to backend {backend} failed ({type(exc).__name__})."
    return Retryable(UpstreamError(message), "transport_error")


def from_status(status: int, backend: str, retry_after: float | None) -> Retryable:
    """Translate an upstream status that another backend may answer better."""
    if status == 429:  # the kind (requests or tokens) is read from the answer by the caller
        return Retryable(
            RateLimited(f"Backend {backend} is rate limited.", kind="requests", headers={}),
            "status_429",
            retry_after=retry_after,
        )
    reason: AttemptFailure = (
        "status_5xx" if status >= 500 else "status_4xx" if status >= 400 else "no_upgrade"
    )
    if status in (401, 403):
        return Retryable(
            UpstreamError(f"Backend {backend} refused the router's credentials."), reason
        )
    return Retryable(UpstreamError(f"Backend {backend} answered with status {status}."), reason)


def from_upgrade(exc: aiohttp.WSServerHandshakeError, backend: str) -> Retryable | UpstreamError:
    """Translate a WebSocket upgrade the backend did not accept (any answer but a good 101).

    A "not now" status, or an answer that is no upgrade at all, may go better on another
    backend. Any other 4xx is about the request and would be refused everywhere: it is final.
    """
    status = exc.status
    if status < 400 or retryable_status(status):
        retry_after = parse_retry_after(exc.headers) if exc.headers is not None else None
        return from_status(status, backend, retry_after)
    return UpstreamError(
        f"Backend {backend} refused the realtime session with status {status}.",
        code="upstream_refused",
    )


def retryable_status(status: int) -> bool:
    """Statuses that say "this backend, now" rather than "this request": try another one."""
    return status >= 500 or status in (401, 403, 408, 429)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI) or ``retry-after`` (seconds or date)."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None
