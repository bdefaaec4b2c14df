"""Accounts that say "not now": which limit ran out, and the 429 a client gets when all do.

When every candidate of a request refuses with 429, or is predicted out of quota until its
reset, the pool is not down, only busy: the client gets OpenAI's 429 (``type`` ``requests`` or
``tokens``, code ``rate_limit_exceeded``) with ``retry-after`` the shortest wait any candidate
gave, so the SDKs back off and retry on their own (a 503 reads as an outage on every dashboard).
The upstream's own 429 body is never relayed: it can quote the router's upstream key and names
the provider's organisation. Only its ``type`` word is read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import orjson

from router.errors import RateLimited
from router.limits import format_duration
from router.upstream.errors import Retryable
from router.upstream.route import Route

KINDS = ("requests", "tokens")


def kind_of(headers: Mapping[str, str], body: bytes) -> str:
    """Which limit a 429 names: the ``x-ratelimit-remaining-*`` header at 0, else the body's
    ``error.type`` (OpenAI writes ``requests`` or ``tokens`` there), else ``requests``."""
    if headers.get("x-ratelimit-remaining-requests") == "0":
        return "requests"
    if headers.get("x-ratelimit-remaining-tokens") == "0":
        return "tokens"
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return "requests"
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if kind in KINDS else "requests"


def rate_limited(
    last: Retryable | None, chain: tuple[Route, ...], tokens: int
) -> RateLimited | None:
    """The 429 for a request that every candidate refused or would refuse; None when the
    failure was something else (an outage is still a 502/503)."""
    if last is not None and not isinstance(last.error, RateLimited):
        return None
    waits = [] if last is None or last.retry_after is None else [last.retry_after]
    kind = last.error.kind if last is not None and isinstance(last.error, RateLimited) else None
    for route in chain:
        wait = route.pool.quota_wait(tokens=tokens)
        if wait is not None:
            waits.append(wait)
            kind = kind or _held_kind(route, tokens)
        cooling = route.pool.retry_in()
        if cooling is not None and last is not None:
            waits.append(cooling)
        elif last is None and (limited := _limited_wait(route)) is not None:
            waits.append(limited)  # nothing sent: every backend waits out an earlier 429
            kind = kind or "requests"
    if last is None and kind is None:
        return None  # nothing went upstream and no quota holds it back: no backend at all
    wait = min(waits) if waits else 1.0
    seconds = max(1, math.ceil(wait))
    kind = kind or "requests"
    what = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
    message = (
        f"Rate limit reached for {what} on every account serving `{chain[0].model}`. "
        f"Please try again in {format_duration(wait)}."
    )
    return RateLimited(message, kind=kind, headers={"retry-after": str(seconds)})


def _limited_wait(route: Route) -> float | None:
    """Seconds until the first backend cooling down after a 429 may be tried, if every
    backend not ready is cooling down after one; else None (an outage is a 503)."""
    now = route.pool.clock()
    waits = []
    for state in route.pool.backends:
        if state.ready(now):
            continue
        if state.limited_until < state.cooldown_until or state.limited_until <= now:
            return None
        waits.append(state.limited_until - now)
    return min(waits) if waits else None


def _held_kind(route: Route, tokens: int) -> str:
    """The limit that holds back the first backend held back by its quota."""
    now = route.pool.clock()
    for state in route.pool.backends:
        quota = state.quota
        if quota is not None and not quota.has_room(now, tokens):
            return "requests" if quota.requests.level(now) < 1.0 else "tokens"
    return "requests"
