"""The key store contract, and the per-process service that caches records in front of one.

:class:`KeyStore` is implemented by :class:`~router.auth.sqlite_store.SQLiteStore` (one host)
and :class:`~router.auth.redis_store.RedisStore` (any number of hosts); both announce every
write to every process, the writer included. :class:`KeyService` answers ``authenticate`` from
a dict, with no store round trip; each write evicts the local entry at once and
:meth:`KeyService.run_invalidation` evicts what other processes change, within a second
(``cache_ttl`` bounds staleness even if a notification were lost).
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol

from router.auth.keyformat import format_key, hash_secret, new_key_id, new_secret, parse_key
from router.auth.records import KeyLimits, KeyRecord, patterns

log = logging.getLogger(__name__)

EVICT_ALL = "*"
"""The id ``changes()`` yields when changes may have been missed: drop every cached record."""


class KeyStore(Protocol):
    """Where key records live; shared by every router process that uses the same store."""

    async def get(self, key_id: str) -> KeyRecord | None:
        """The record, or None if there is no such key."""

    async def list(self) -> builtins.list[KeyRecord]:
        """Every record, revoked ones included, newest first."""

    async def put(self, record: KeyRecord) -> None:
        """Insert the record, or replace a copy that is not newer (a revoked copy, or a higher
        version, stays: :func:`~router.auth.records.newest`), and announce the change to every
        process."""

    async def merge(self, records: Iterable[KeyRecord]) -> int:
        """Write each record the store has no copy of, or an older copy: how many were written.

        Idempotent (a tie keeps the stored copy), so a backup or a snapshot can be merged any
        number of times; never un-revokes a key.
        """

    async def touch(self, last_used: Mapping[str, float]) -> None:
        """Raise ``last_used_at`` to the given times (never lower it); not a change."""

    def changes(self) -> AsyncIterator[str]:
        """Ids changed by any process (this one too), until the store closes.

        Yields :data:`EVICT_ALL` first, once it is listening (changes made before that were not
        seen), and again whenever changes may have been missed (a reconnect).
        """

    async def close(self) -> None:
        """Release connections; ``changes()`` iterators end."""


class KeyService:
    """Authentication with an in-process record cache, and the admin operations on keys."""

    def __init__(
        self,
        store: KeyStore,
        *,
        clock: Callable[[], float] = time.time,
        cache_ttl: float = 60.0,
        max_cached: int = 10_000,
        pepper: bytes | None = None,
        refresh_after: float = 0.05,
    ) -> None:
        self._store = store
        self._clock = clock
        self._cache_ttl = cache_ttl
        self._max_cached = max_cached
        self._pepper = pepper
        self._refresh_after = refresh_after
        # key id -> (record or None for "no such key", monotonic time it was fetched)
        self._cache: dict[str, tuple[KeyRecord | None, float]] = {}
        self._evictions = 0  # bumped on every eviction; see _lookup
        self._last_used: dict[str, float] = {}
        self.invalidation_live = asyncio.Event()
        """Set while :meth:`run_invalidation` is listening (a readiness signal)."""

    def __repr__(self) -> str:
        return (
            f"<KeyService {type(self._store).__name__} [{len(self._cache)} cached"
            f" | {len(self._last_used)} last-used pending]>"
        )

    # --- the request path -----------------------------------------------------------------

    async def authenticate(self, full_key: str) -> KeyRecord | None:
        """The record the key opens, or None (malformed, unknown, revoked, expired, wrong).

        An uncached key is read from the store, whose errors propagate (the caller answers 503).
        """
        parsed = parse_key(full_key)
        if parsed is None:
            return None
        key_id, secret = parsed
        record = await self._lookup(key_id)
        now = self._clock()
        if record is not None and not record.accepts(secret, now, pepper=self._pepper):
            # Perhaps rotated elsewhere a moment ago: read the store again rather than wait
            # for the invalidation. At most once per refresh_after per key, so wrong secrets
            # cannot turn into a stream of store reads.
            if not self._refreshable(key_id):
                return None
            self._cache.pop(key_id, None)
            record = await self._lookup(key_id)
        if record is None or not record.accepts(secret, now, pepper=self._pepper):
            return None
        self._last_used[key_id] = now  # written in batches by flush_last_used()
        return record

    def _refreshable(self, key_id: str) -> bool:
        entry = self._cache.get(key_id)
        return entry is not None and time.monotonic() - entry[1] >= self._refresh_after

    async def _lookup(self, key_id: str) -> KeyRecord | None:
        entry = self._cache.get(key_id)
        if entry is not None and time.monotonic() - entry[1] < self._cache_ttl:
            return entry[0]
        # A change may be announced while the store read is in flight; caching the (possibly
        # stale) answer then would outlive the eviction, so cache only if nothing was evicted.
        evictions = self._evictions
        record = await self._store.get(key_id)
        if evictions == self._evictions:
            if key_id not in self._cache and len(self._cache) >= self._max_cached:
                # Bounded, since ids come from clients: drop the oldest entry.
                del self._cache[next(iter(self._cache))]
            self._cache[key_id] = (record, time.monotonic())
        return record

    def evict(self, key_id: str) -> None:
        """Forget the cached record for ``key_id`` (:data:`EVICT_ALL`: every record)."""
        self._evictions += 1
        if key_id == EVICT_ALL:
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)

    # --- admin operations -----------------------------------------------------------------

    async def get(self, key_id: str) -> KeyRecord | None:
        """The stored record (not the cached one)."""
        return await self._store.get(key_id)

    async def list(self) -> builtins.list[KeyRecord]:
        """Every key, revoked included, newest first."""
        return await self._store.list()

    async def create(
        self,
        name: str,
        *,
        models: Iterable[str] = ("*",),
        rpm: int | None = None,
        tpm: int | None = None,
        concurrency: int | None = None,
        expires_at: float | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new active key: ``(record, full_key)``. The full key is never retrievable again."""
        key_id = new_key_id()
        while await self._store.get(key_id) is not None:  # 60 random bits: practically never
            key_id = new_key_id()
        secret = new_secret()
        record = KeyRecord(
            id=key_id,
            name=name,
            created_at=self._clock(),
            secret_hash=hash_secret(secret, self._pepper),
            expires_at=expires_at,
            models=patterns(models),
            limits=KeyLimits(rpm=rpm, tpm=tpm, concurrency=concurrency),
        )
        return await self._write(record), format_key(key_id, secret)

    async def rotate(
        self, key_id: str, *, grace_seconds: float = 86400.0
    ) -> tuple[KeyRecord, str] | None:
        """A new secret for the same id; the old one works for ``grace_seconds`` more.

        Only the secret being replaced gets a grace period: rotating twice in a row ends the
        grace of the older one. None if the key does not exist or is revoked.
        """
        record = await self._store.get(key_id)
        if record is None or record.state != "active":
            return None
        secret = new_secret()
        grace = grace_seconds > 0
        rotated = dataclasses.replace(
            record,
            secret_hash=hash_secret(secret, self._pepper),
            previous_hash=record.secret_hash if grace else None,
            previous_expires_at=self._clock() + grace_seconds if grace else None,
        )
        return await self._write(rotated), format_key(key_id, secret)

    async def update(self, key_id: str, **fields: Any) -> KeyRecord | None:
        """Change what :meth:`KeyRecord.updated` allows (name, models, expiry, limits).

        Raises ValueError for any other field or an invalid value; None if there is no such key.
        """
        record = await self._store.get(key_id)
        if record is None:
            return None
        return await self._write(record.updated(**fields))

    async def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke the key: it fails at once in this process, within a second everywhere."""
        record = await self._store.get(key_id)
        if record is None:
            return None
        return await self._write(dataclasses.replace(record, state="revoked"))

    async def merge(self, records: Iterable[KeyRecord]) -> int:
        """Merge records from a backup, as they are (versions kept): each is written unless
        the store holds a newer copy, so nothing is rolled back or un-revoked. How many were
        written."""
        batch = builtins.list(records)
        try:
            return await self._store.merge(batch)
        finally:
            for record in batch:
                self.evict(record.id)

    async def _write(self, record: KeyRecord) -> KeyRecord:
        record = record.written(self._clock())  # the next version: merges keep the newest
        try:
            await self._store.put(record)
        finally:
            self.evict(record.id)  # even on error: the store may have applied the write
        return record

    # --- background work the app owns -----------------------------------------------------

    async def run_invalidation(self) -> None:
        """Evict what any process changes, until the store closes; run as an owned task.

        If the store's change feed fails, it is reopened after a pause (doubling up to 5 s) so
        a broken store never spins the loop; a reopened feed starts with :data:`EVICT_ALL`.
        """
        pause = 0.1
        while True:
            try:
                await self._consume_changes()
                return
            except Exception:
                log.exception("key change feed failed; reopening in %.1f s", pause)
            self.evict(EVICT_ALL)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    async def _consume_changes(self) -> None:
        changes = self._store.changes()
        try:
            async for key_id in changes:
                self.evict(key_id)
                self.invalidation_live.set()  # the feed yields EVICT_ALL once it listens
        finally:
            self.invalidation_live.clear()
            if isinstance(changes, AsyncGenerator):
                await changes.aclose()

    async def flush_last_used(self) -> None:
        """Write pending last-use times to the store in one batch (call every few seconds)."""
        if not self._last_used:
            return
        pending, self._last_used = self._last_used, {}
        try:
            await self._store.touch(pending)
        except BaseException:
            for key_id, at in pending.items():  # keep them for the next flush
                self._last_used[key_id] = max(at, self._last_used.get(key_id, at))
            raise
