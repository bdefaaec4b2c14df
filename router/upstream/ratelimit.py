"""An account's own ``x-ratelimit-*`` headers, read from every upstream answer.

OpenAI answers with ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; Azure OpenAI
deployments send only the two ``remaining`` ones. Resets are Go durations (``6m0s``, ``12ms``,
``1.5s``): the time until the bucket is full again. This runs once per answer on the hot path,
so an answer without ``x-ratelimit-remaining-*`` costs two dict lookups and nothing else, and a
malformed value is ignored (the upstream's word is advice, never a reason to fail a request).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from balancers.quota import Report

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DIGITS = frozenset("0123456789.")


def parse_duration(text: str) -> float | None:
    """Seconds in a Go duration (``1h2m3.5s``, ``12ms``, ``0s``), or a bare number of seconds;
    None if it is neither. Negative durations are refused: a reset is never in the past."""
    # What OpenAI sends on nearly every answer, read without raising: "12ms", "0s", "7s".
    if text.endswith("ms"):
        head = text[:-2]
        if head.isdigit() and head.isascii():
            return int(head) / 1000
    elif text.endswith("s"):
        head = text[:-1]
        if head.isdigit() and head.isascii():
            return float(int(head))
    try:
        return _non_negative(float(text))  # "1.5": some proxies send bare seconds
    except ValueError:
        return _go_duration(text)


def _go_duration(text: str) -> float | None:
    """The general form: one or more number-unit pairs (``1h2m3.5s``)."""
    total = 0.0
    i, n = 0, len(text)
    if not n:
        return None
    while i < n:
        start = i
        while i < n and text[i] in _DIGITS:
            i += 1
        number = text[start:i]
        start = i
        while i < n and text[i] not in _DIGITS:
            i += 1
        unit = _UNITS.get(text[start:i])
        if not number or unit is None:
            return None
        try:
            total += float(number) * unit
        except ValueError:  # "1.2.3s"
            return None
    return total


def _non_negative(value: float) -> float | None:
    return value if value >= 0.0 and math.isfinite(value) else None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    if value.isdigit() and value.isascii():  # the usual case: no float parse that may raise
        return int(value)
    try:
        return _non_negative(float(value))
    except ValueError:
        return None


_NAMES = {
    kind: tuple(f"x-ratelimit-{part}-{kind}" for part in ("remaining", "reset", "limit"))
    for kind in ("requests", "tokens")
}


def _report(headers: Mapping[str, str], kind: str) -> Report | None:
    remaining_name, reset_name, limit_name = _NAMES[kind]
    remaining = _number(headers.get(remaining_name))
    if remaining is None:
        return None
    reset = headers.get(reset_name)
    return Report(
        remaining,
        parse_duration(reset) if reset is not None else None,
        _number(headers.get(limit_name)),
    )


def read(headers: Mapping[str, str]) -> tuple[Report | None, Report | None] | None:
    """The answer's requests and tokens reports, or None when it carries neither (the common
    case for self-hosted servers: two lookups, no allocation)."""
    if (
        "x-ratelimit-remaining-requests" not in headers
        and "x-ratelimit-remaining-tokens" not in headers
    ):
        return None
    return _report(headers, "requests"), _report(headers, "tokens")
