"""Limits kept in this process: the embedded default when no Redis is configured.

Exact for one process only; with several workers or hosts each enforces the limits on its
own, so use :class:`router.limits.redis.RedisLimiter` there. The decision is synchronous (no
``await`` inside it), so it is atomic under asyncio without a lock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from router.limits import bucket
from router.limits.bucket import BucketSpec, BucketState, Take
from router.limits.headers import rate_limit_headers
from router.limits.types import (
    CONCURRENCY_RETRY_AFTER,
    Account,
    AccountLevel,
    Admission,
    Kind,
    Limits,
    worst,
)


@dataclass(slots=True)
class _Key:
    """One API key's buckets (None until first used) and open leases (id -> expiry)."""

    rpm: BucketState | None = None
    tpm: BucketState | None = None
    leases: dict[str, float] = field(default_factory=dict)


class LocalLimiter:
    """In-process token buckets and concurrency leases, one set per API key.

    Entries live as long as the process; there is one per API key that was ever used, and
    the keys are bounded by the key store. Leases expire after ``lease_ttl`` like Redis's, so
    a lease whose release was lost cannot hold a slot forever.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, lease_ttl: float = 900.0
    ) -> None:
        self._clock = clock
        self._lease_ttl = lease_ttl
        self._keys: dict[str, _Key] = {}

    def __repr__(self) -> str:
        leases = sum(len(key.leases) for key in self._keys.values())
        return f"<LocalLimiter [{len(self._keys)} keys | {leases} leases]>"

    async def admit(
        self,
        key_id: str,
        limits: Limits,
        tokens: int,
        lease: str,
        accounts: Sequence[Account] = (),
    ) -> Admission:
        if limits.empty and not accounts:
            return Admission(allowed=True, kind=None, retry_after=None, headers={})
        now = self._clock()
        key = self._keys.get(key_id) or self._keys.setdefault(key_id, _Key())
        rpm = _take(key.rpm, limits.rpm, now, 1)
        tpm = _take(key.tpm, limits.tpm, now, tokens)
        refused = self._refusal(key, limits, rpm, tpm, now)
        if refused is not None:
            return refused
        chosen: int | None = None
        levels: tuple[AccountLevel, ...] = ()
        if accounts:
            chosen, levels, full = self._account(accounts, tokens, now)
            if full is not None:  # every account is at its declared limit: nothing is taken
                kind, retry_after = full
                headers = _headers(limits, key.rpm, key.tpm, now)
                return Admission(
                    allowed=False,
                    kind=kind,
                    retry_after=retry_after,
                    headers=headers,
                    accounts_full=True,
                    accounts=levels,
                )
        # All limits passed: only now take from each, so a refusal takes from none.
        if rpm is not None:
            key.rpm = rpm.state
        if tpm is not None:
            key.tpm = tpm.state
        if limits.concurrency is not None:
            key.leases[lease] = now + self._lease_ttl
        headers = _headers(limits, key.rpm, key.tpm, now)
        return Admission(
            allowed=True,
            kind=None,
            retry_after=None,
            headers=headers,
            account=chosen,
            accounts=levels,
        )

    def _refusal(
        self, key: _Key, limits: Limits, rpm: Take | None, tpm: Take | None, now: float
    ) -> Admission | None:
        """The key's own refusal (the worst limit it breaks), or None if every limit allows
        the request; nothing is taken either way."""
        refusals: list[tuple[Kind, float | None]] = []
        if rpm is not None and not rpm.allowed:
            refusals.append(("requests", rpm.retry_after))
        if tpm is not None and not tpm.allowed:
            refusals.append(("tokens", tpm.retry_after))
        if limits.concurrency is not None and not self._has_slot(key, limits.concurrency, now):
            # A limit of 0 never frees a slot: no wait helps (None), as in admit.lua.
            wait = CONCURRENCY_RETRY_AFTER if limits.concurrency else None
            refusals.append(("concurrency", wait))
        if not refusals:
            return None
        kind, retry_after = worst(refusals)
        # Nothing is taken: the headers show the buckets as they are.
        rpm_now = _current(key.rpm, limits.rpm, now)
        tpm_now = _current(key.tpm, limits.tpm, now)
        headers = _headers(limits, rpm_now, tpm_now, now)
        return Admission(allowed=False, kind=kind, retry_after=retry_after, headers=headers)

    def _account(
        self, accounts: Sequence[Account], tokens: int, now: float
    ) -> tuple[int | None, tuple[AccountLevel, ...], tuple[Kind, float | None] | None]:
        """Take from the first account with room: its index, the levels of those checked,
        and (when none had room) the refusal with the shortest wait."""
        levels: list[AccountLevel] = []
        refusals: list[tuple[Kind, float | None]] = []
        for index, account in enumerate(accounts):
            entry = self._keys.get(account.id) or self._keys.setdefault(account.id, _Key())
            limits = account.limits
            rpm = _take(entry.rpm, limits.rpm, now, 1)
            tpm = _take(entry.tpm, limits.tpm, now, tokens)
            taken = (rpm is None or rpm.allowed) and (tpm is None or tpm.allowed)
            if taken:
                if rpm is not None:
                    entry.rpm = rpm.state
                if tpm is not None:
                    entry.tpm = tpm.state
            levels.append(_level(entry, limits, now))
            if taken:
                return index, tuple(levels), None
            waits = [t.retry_after for t in (rpm, tpm) if t is not None and not t.allowed]
            kind: Kind = "requests" if rpm is not None and not rpm.allowed else "tokens"
            known = [wait for wait in waits if wait is not None]
            refusals.append((kind, max(known) if len(known) == len(waits) else None))
        # The shortest wait any account gives (None, never, only if none gives one).
        return None, tuple(levels), min(refusals, key=lambda r: math.inf if r[1] is None else r[1])

    async def settle(self, key_id: str, limits: Limits, delta_tokens: int) -> None:
        if limits.tpm is None or delta_tokens == 0:
            return
        now = self._clock()
        spec = BucketSpec(limits.tpm)
        key = self._keys.get(key_id) or self._keys.setdefault(key_id, _Key())
        state = key.tpm if key.tpm is not None else bucket.full(spec, now)
        key.tpm = bucket.settle(state, spec, now, delta_tokens)

    async def release(self, key_id: str, limits: Limits, lease: str) -> None:
        if limits.concurrency is None:
            return
        key = self._keys.get(key_id)
        if key is not None:
            key.leases.pop(lease, None)

    @property
    def lease_ttl(self) -> float:
        return self._lease_ttl

    async def renew(self, key_id: str, limits: Limits, lease: str) -> None:
        key = self._keys.get(key_id)
        if limits.concurrency is None or key is None or lease not in key.leases:
            return
        key.leases[lease] = self._clock() + self._lease_ttl

    async def close(self) -> None:
        self._keys.clear()

    @staticmethod
    def _has_slot(key: _Key, limit: int, now: float) -> bool:
        if len(key.leases) < limit:
            return True
        # Pruning only when full keeps the common case O(1).
        for lease, expiry in list(key.leases.items()):
            if expiry <= now:
                del key.leases[lease]
        return len(key.leases) < limit


def _take(state: BucketState | None, limit: int | None, now: float, cost: float) -> Take | None:
    if limit is None:
        return None
    spec = BucketSpec(limit)
    return bucket.try_take(state if state is not None else bucket.full(spec, now), spec, now, cost)


def _current(state: BucketState | None, limit: int | None, now: float) -> BucketState | None:
    if limit is None:
        return None
    spec = BucketSpec(limit)
    return bucket.level_at(state if state is not None else bucket.full(spec, now), spec, now)


def _level(entry: _Key, limits: Limits, now: float) -> AccountLevel:
    rpm = _current(entry.rpm, limits.rpm, now)
    tpm = _current(entry.tpm, limits.tpm, now)
    return AccountLevel(
        _report(rpm, limits.rpm, now) if rpm is not None else None,
        _report(tpm, limits.tpm, now) if tpm is not None else None,
    )


def _headers(
    limits: Limits, rpm: BucketState | None, tpm: BucketState | None, now: float
) -> dict[str, str]:
    rpm_level, rpm_reset = _report(rpm, limits.rpm, now)
    tpm_level, tpm_reset = _report(tpm, limits.tpm, now)
    return rate_limit_headers(limits, rpm_level, rpm_reset, tpm_level, tpm_reset)


def _report(state: BucketState | None, limit: int | None, now: float) -> tuple[float, float]:
    if state is None or limit is None:
        return 0.0, 0.0
    return state.level, bucket.time_to_full(state, BucketSpec(limit), now)
