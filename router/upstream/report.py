"""One health report for every attempt on a backend, an HTTP request and a WebSocket dial alike.

An attempt ends one of four ways, and each says one thing to the backend's health
(:class:`~balancers.BackendState`): it was **answered** (a success, with the time to the first
byte when that measures the backend), **refused** (a "not now" status: rate limited or failing;
a status about the request itself is an answer), it **failed** in transport (connect, timeout,
reset: :data:`~router.upstream.errors.TRANSPORT_ERRORS`), or the client **abandoned** it (no
outcome to report). Envoy's outlier detection reads the same four from its upstream requests.
"""

from __future__ import annotations

import time

from balancers import BackendState
from router.errors import RouterError
from router.upstream.errors import Retryable, from_exception


def answered(state: BackendState, now: float, latency: float | None = None) -> None:
    """The backend answered; ``latency`` (first byte) feeds the latency estimate if given."""
    state.answered(now, latency)


def refused(state: BackendState, error: Retryable | RouterError, status: int, now: float) -> None:
    """The backend answered ``status``, translated to ``error`` for this try."""
    if not isinstance(error, Retryable):
        state.on_success(now)  # the backend answered; the request was what it refused
    elif status == 429:
        state.on_rate_limited(now, error.retry_after)
    else:
        state.on_failure(now)


def failed(state: BackendState, exc: BaseException, name: str) -> Retryable:
    """A transport failure (one of ``TRANSPORT_ERRORS``): the error for this try."""
    state.on_failure(time.monotonic())
    return from_exception(exc, name)


def abandoned(state: BackendState) -> None:
    """The client went away (a cancel) before the attempt ended."""
    state.on_abandoned(time.monotonic())
