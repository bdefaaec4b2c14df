"""OpenAI's ``x-ratelimit-*`` headers, with durations written the way Go writes them."""

from __future__ import annotations

import math

from router.limits.types import Limits

_NS = {"ns": 1, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_MINUTE = 60 * _NS["s"]
_HOUR = 60 * _MINUTE


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()``: "0s", "1.5µs", "12ms", "1.5s", "6m0s", "1h0m0s".

    OpenAI's reset headers use this format (it is what their Go services print). Go durations
    are whole nanoseconds, so the value is rounded to one first.
    """
    ns = round(seconds * _NS["s"])
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < _NS["s"]:
        unit = "ns" if ns < _NS["µs"] else "µs" if ns < _NS["ms"] else "ms"
        return f"{sign}{_decimal(ns, _NS[unit])}{unit}"
    hours, rest = divmod(ns, _HOUR)
    minutes, rest = divmod(rest, _MINUTE)
    text = f"{_decimal(rest, _NS['s'])}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    """``value / unit`` in decimal without trailing zeros (exact: integers only)."""
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{fraction:0{digits}d}".rstrip("0")


def rate_limit_headers(
    limits: Limits,
    rpm_remaining: float,
    rpm_reset: float,
    tpm_remaining: float,
    tpm_reset: float,
) -> dict[str, str]:
    """The headers for the limits that are set: limit, remaining (whole, never negative, so a
    debt reads as 0) and the time until the bucket is full again, rounded up to whole
    milliseconds as OpenAI sends it (so never the non-ASCII "µs", and a client that waits
    that long finds the bucket full)."""
    headers: dict[str, str] = {}
    if limits.rpm is not None:
        _add(headers, "requests", limits.rpm, rpm_remaining, rpm_reset)
    if limits.tpm is not None:
        _add(headers, "tokens", limits.tpm, tpm_remaining, tpm_reset)
    return headers


def _add(headers: dict[str, str], kind: str, limit: int, remaining: float, reset: float) -> None:
    headers[f"x-ratelimit-limit-{kind}"] = str(limit)
    headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(remaining)))
    headers[f"x-ratelimit-reset-{kind}"] = format_duration(_ceil_ms(reset))


def _ceil_ms(seconds: float) -> float:
    # Rounding to nanoseconds first keeps float noise (0.012 * 1000 = 12.000000000000002)
    # from adding a millisecond.
    return max(0, math.ceil(round(seconds * 1000, 6))) / 1000
