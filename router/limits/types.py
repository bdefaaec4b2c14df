"""What every limiter shares: the limits of a key, the answer to an admission, the protocol."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from router.outcomes import STORE_FAILURES, LimitKind, StoreFailure

Kind = LimitKind
FailureReason = StoreFailure
FAILURE_REASONS = STORE_FAILURES

# Upper bounds of a limit, enforced where limits come in (config, admin API, CLI). admit.lua
# computes in doubles, exact for integers up to 2^53 (about 9 * 10^15); 10^12 keeps a bucket's
# level and its fractional refill exact to about 10^-4 of a token. Real quotas are far below:
# the largest published per-model quotas are in the hundreds of millions of tokens a minute.
MAX_PER_MINUTE = 10**12
# Open requests of one key, each a lease in a sorted set: far more than any fleet holds open.
MAX_CONCURRENCY = 10**6
MAX_LIMITS: dict[str, int] = {
    "rpm": MAX_PER_MINUTE,
    "tpm": MAX_PER_MINUTE,
    "concurrency": MAX_CONCURRENCY,
}

# A concurrency slot frees when some open request of the key ends, which nobody can predict;
# unlike a bucket there is no computed wait. One second is a polite, short retry hint
# (admit.lua carries the same constant).
CONCURRENCY_RETRY_AFTER = 1.0


def failure_reason(exc: BaseException) -> FailureReason:
    """Why a store call failed, for the metric and the log: ``timeout`` (no answer in time),
    ``connection`` (refused, reset, unreachable) or ``error`` (Redis answered with an error:
    out of memory, a read-only replica, a busy script)."""
    # Imported here: only a Redis store fails, and it has imported redis by then.
    from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: PLC0415
    from redis.exceptions import TimeoutError as RedisTimeoutError  # noqa: PLC0415

    if isinstance(exc, TimeoutError | RedisTimeoutError):
        return "timeout"
    if isinstance(exc, RedisConnectionError | OSError):
        return "connection"
    return "error"


class LimiterUnavailable(Exception):
    """The limit store failed and the limiter is configured to fail closed (the router: 503);
    ``reason`` is :func:`failure_reason` of what failed."""

    def __init__(self, message: str, reason: FailureReason) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-key limits: requests and tokens per minute, concurrent requests. None is unlimited;
    0 refuses every request (a 429 naming the limit, no ``retry-after``).

    Only negative values are refused here: a record stored before :data:`MAX_LIMITS` existed
    still loads. The doors where limits come in (config, admin API, CLI) enforce the bounds."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "concurrency"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"limits.{name}: expected a non-negative integer or null")

    def to_dict(self) -> dict[str, int | None]:
        """``{"rpm": …, "tpm": …, "concurrency": …}`` (a key record's JSON)."""
        return {"rpm": self.rpm, "tpm": self.tpm, "concurrency": self.concurrency}

    @property
    def empty(self) -> bool:
        """No limit at all: the router skips the limiter."""
        return self.rpm is None and self.tpm is None and self.concurrency is None


@dataclass(frozen=True, slots=True)
class Account:
    """A provider account's declared quota (a backend's ``limits: {rpm, tpm}``): buckets shared
    by every router, under ``id``, checked and charged in the same call as the key's."""

    id: str
    limits: Limits


class AccountLevel(NamedTuple):
    """One account's buckets after an admission: level and seconds to full of its requests
    and tokens buckets (None for a limit it does not declare)."""

    requests: tuple[float, float] | None
    tokens: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class Admission:
    """A limiter's answer.

    ``retry_after`` is None when allowed, and also when no wait could ever help (a token
    estimate larger than the tpm capacity, a limit of 0). ``degraded`` means admitted
    unchecked because the store failed (``failure`` says why) and the limiter fails open.
    """

    allowed: bool
    kind: Kind | None
    retry_after: float | None
    headers: dict[str, str]
    degraded: bool = False
    failure: FailureReason | None = None
    # With candidate accounts: the index of the one charged (None: none had room, or none
    # given), whether the refusal is theirs (every account full; the key was not charged),
    # and the buckets of those checked, in order.
    account: int | None = None
    accounts_full: bool = False
    accounts: tuple[AccountLevel, ...] = ()


def degraded(reason: FailureReason) -> Admission:
    """Admitted without a check (a fresh instance: callers may add to its headers)."""
    return Admission(
        allowed=True, kind=None, retry_after=None, headers={}, degraded=True, failure=reason
    )


class Limiter(Protocol):
    """Admits requests against a key's limits; the router calls settle and release in its
    one ``finally`` per request."""

    async def admit(
        self,
        key_id: str,
        limits: Limits,
        tokens: int,
        lease: str,
        accounts: Sequence[Account] = (),
    ) -> Admission:
        """Check and take one request, ``tokens`` (an estimate, >= 0) and the concurrency
        lease ``lease`` (unique per request), all or nothing; with ``accounts``, also from
        the first of them (in the caller's order of preference) that has room, or from none
        and nothing at all when none has."""
        ...

    async def settle(self, key_id: str, limits: Limits, delta_tokens: int) -> None:
        """Correct the token charge by ``actual - estimate`` (negative refunds)."""
        ...

    async def release(self, key_id: str, limits: Limits, lease: str) -> None:
        """Return the concurrency lease taken by :meth:`admit`."""
        ...

    @property
    def lease_ttl(self) -> float:
        """Seconds an unreleased lease holds its slot (a crashed router's leases expire)."""
        ...

    async def renew(self, key_id: str, limits: Limits, lease: str) -> None:
        """Extend an open lease by ``lease_ttl`` from now: what outlives the ttl (a realtime
        session) renews well before it ends. Never raises; a lease not open stays closed."""
        ...

    async def close(self) -> None: ...


def worst(refusals: Sequence[tuple[Kind, float | None]]) -> tuple[Kind, float | None]:
    """The refusal that decides the answer: the longest wait, None (never) longest of all.

    A retry before the longest wait would be refused again by that limit. On a tie the first
    in order (requests, tokens, concurrency) wins; admit.lua picks the same way.
    """
    return max(refusals, key=lambda r: math.inf if r[1] is None else r[1])
