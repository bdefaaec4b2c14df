"""An account quota: requests and tokens per minute, enforced and reported as OpenAI does.

Off unless ``--rpm``/``--tpm`` (or ``POST /_fake/quota``) set one. Each limit is a token bucket
of ``limit`` units refilled at ``limit / 60`` per second, starting full: the model OpenAI
describes ("x-ratelimit-reset-*: the time until the rate limit resets to its initial state"),
and the one that lets a test predict exactly when a refused request would pass.

A request costs one request and its prompt estimate in tokens (the words the fake counts for
``usage``) at admission; the answer settles the rest (its actual prompt, history included, plus
its output), so the token bucket may go below zero as OpenAI's does after a long answer.

Headers (``headers`` mode):

``openai``  all six ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, resets as Go
            durations (``6m0s``, ``1s``, ``12ms``), on every answer of a limited endpoint.
``azure``   only ``x-ratelimit-remaining-requests`` and ``x-ratelimit-remaining-tokens``: what
            Azure OpenAI deployments send. Azure also enforces RPM over short periods ("the
            rate limit expects that requests be evenly distributed over a one-minute period
            ... evaluates the rate of incoming requests over a small period of time,
            typically 1 or 10 seconds"), so its remaining-requests reads about RPM/6: here
            the requests bucket holds RPM/6 (at least 1), refilled at the same RPM/60 a
            second.
``none``    no quota headers; the limit still applies (a self-hosted server behind a proxy).

``window`` (seconds, default 60) shrinks the buckets to what the limit allows in that window
(``limit * window / 60``, at least 1), refilled at the same per-minute rate: ``rpm=600,
window=1`` is an account of 10 requests a second that cannot burst past 10, so a test of a few
seconds meets the quota as a minute-long run meets a per-minute one. The headers' ``limit``
stays the per-minute figure, as OpenAI's does; their ``reset`` is the time to a full bucket.

Past the quota: 429 with OpenAI's body (``type`` ``requests`` or ``tokens``, code
``rate_limit_exceeded``), ``retry-after`` (whole seconds, rounded up) and ``retry-after-ms``.
Pure and synchronous: the clock is injected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from benchmarks.fake_upstream.wire import ApiError

HeaderMode = Literal["openai", "azure", "none"]
HEADER_MODES: tuple[HeaderMode, ...] = ("openai", "azure", "none")
_AZURE_HEADERS = ("x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens")
_LIMITS_PAGE = "Visit https://platform.openai.com/account/rate-limits to learn more."


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` at millisecond precision: ``12ms``, ``1.5s``, ``6m0s``."""
    ms = max(math.ceil(round(seconds * 1000, 6)), 0)  # round first: 3 / (10000 / 60) is 18ms
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    text = f"{whole}" + (f".{frac:03d}".rstrip("0") if frac else "") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


@dataclass(slots=True)
class Bucket:
    """``limit`` units per minute, at most ``capacity`` at once; ``level`` is what is left,
    refilled continuously."""

    limit: int
    capacity: float
    level: float
    stamp: float

    @classmethod
    def full(cls, limit: int, capacity: float, now: float) -> Bucket:
        return cls(limit, capacity, capacity, now)

    @property
    def rate(self) -> float:
        return self.limit / 60.0

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` units are available."""
        return max(amount - self.level, 0.0) / self.rate

    def remaining(self) -> int:
        return max(math.floor(self.level), 0)

    def reset(self) -> str:
        return go_duration((self.capacity - self.level) / self.rate)


@dataclass(slots=True)
class Quota:
    """One account's buckets; ``admit`` and ``settle`` are the only mutations."""

    rpm: int | None
    tpm: int | None
    headers: HeaderMode = "openai"
    clock: Callable[[], float] = field(default=lambda: 0.0, repr=False)
    window: float = 60.0
    requests: Bucket | None = None
    tokens: Bucket | None = None

    def __post_init__(self) -> None:
        now = self.clock()
        share = min(self.window, 60.0) / 60.0
        if self.rpm:
            burst = max(self.rpm * share, 1.0)
            if self.headers == "azure":
                burst = min(burst, max(self.rpm / 6, 1.0))
            self.requests = Bucket.full(self.rpm, burst, now)
        if self.tpm:
            self.tokens = Bucket.full(self.tpm, max(self.tpm * share, 1.0), now)

    def admit(self, model: str, org: str, estimate: int) -> dict[str, str]:
        """Charge one request and ``estimate`` tokens, or raise the 429 OpenAI would send.

        Returns the headers the answer carries (after the charge).
        """
        now = self.clock()
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.refill(now)
        if self.requests is not None and self.requests.level < 1:
            raise self._refused("requests", self.requests, 1, model, org)
        if self.tokens is not None and estimate > self.tokens.limit:
            raise self._too_large(self.tokens, estimate, model, org)
        if self.tokens is not None and self.tokens.level < estimate:
            raise self._refused("tokens", self.tokens, estimate, model, org)
        if self.requests is not None:
            self.requests.level -= 1
        if self.tokens is not None:
            self.tokens.level -= estimate
        return self.header_values()

    def settle(self, tokens: int) -> None:
        """Charge what the answer used beyond the estimate (negative: give back)."""
        if self.tokens is not None:
            self.tokens.refill(self.clock())
            self.tokens.level = min(self.tokens.capacity, self.tokens.level - tokens)

    def header_values(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for kind, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                values[f"x-ratelimit-limit-{kind}"] = str(bucket.limit)
                values[f"x-ratelimit-remaining-{kind}"] = str(bucket.remaining())
                values[f"x-ratelimit-reset-{kind}"] = bucket.reset()
        if self.headers == "azure":
            return {name: value for name, value in values.items() if name in _AZURE_HEADERS}
        return values if self.headers == "openai" else {}

    def snapshot(self) -> dict[str, object]:
        now = self.clock()
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.refill(now)
        return {
            "rpm": self.rpm,
            "tpm": self.tpm,
            "headers": self.headers,
            "window": self.window,
            "remaining_requests": None if self.requests is None else self.requests.remaining(),
            "remaining_tokens": None if self.tokens is None else self.tokens.remaining(),
        }

    def _refused(self, kind: str, bucket: Bucket, wanted: int, model: str, org: str) -> ApiError:
        wait = bucket.wait_for(wanted)
        unit = "RPM" if kind == "requests" else "TPM"
        used = math.ceil(bucket.capacity) - bucket.remaining()
        message = (
            f"Rate limit reached for {model} in organization {org} on {kind} per min ({unit}):"
            f" Limit {bucket.limit}, Used {used}, Requested {wanted}."
            f" Please try again in {go_duration(wait)}. {_LIMITS_PAGE}"
        )
        return self._error(message, kind, wait)

    def _too_large(self, bucket: Bucket, wanted: int, model: str, org: str) -> ApiError:
        # No wait helps: OpenAI answers 429 all the same, and says to shrink the request.
        message = (
            f"Request too large for {model} in organization {org} on tokens per min (TPM):"
            f" Limit {bucket.limit}, Requested {wanted}. The input or output tokens must be"
            f" reduced in order to run successfully. {_LIMITS_PAGE}"
        )
        return self._error(message, "tokens", 60.0)

    def _error(self, message: str, kind: str, wait: float) -> ApiError:
        headers = self.header_values()
        headers["retry-after"] = str(max(math.ceil(wait), 1))
        headers["retry-after-ms"] = str(max(math.ceil(round(wait * 1000, 6)), 1))
        return ApiError(429, message, type_=kind, code="rate_limit_exceeded", headers=headers)
