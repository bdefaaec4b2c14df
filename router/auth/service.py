"""The key service: the admin operations on keys, and the parts one router process runs.

Four jobs, one class each: :class:`~router.auth.cache.KeyCache` authenticates from an
in-process cache, :class:`~router.auth.feed.ChangeFeed` evicts what other processes change,
:class:`~router.auth.last_used.LastUsed` batches last-use times, and :class:`KeyService` itself
creates, rotates, updates and revokes keys (each write evicts the local entry at once). The
request path calls :meth:`KeyService.authenticate`; ``router.resources`` runs the feed and the
flush as owned tasks.
"""

from __future__ import annotations

import builtins
import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from balancers.fairqueue import DEFAULT_PRIORITY, Priority
from router.auth.cache import KeyCache
from router.auth.feed import ChangeFeed
from router.auth.keyformat import format_key, hash_secret, new_key_id, new_secret
from router.auth.keystore import KeyStore
from router.auth.last_used import LastUsed
from router.auth.records import KeyLimits, KeyRecord, patterns

DEFAULT_GRACE_SECONDS = 86400.0
"""How long a rotated key's old secret keeps working by default: a day to redeploy clients."""


class KeyService:
    """The admin operations on keys, in front of the cache, the change feed and last-used."""

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
        self._pepper = pepper
        self.last_used = LastUsed(store)
        self.cache = KeyCache(
            store,
            self.last_used,
            clock=clock,
            cache_ttl=cache_ttl,
            max_cached=max_cached,
            pepper=pepper,
            refresh_after=refresh_after,
        )
        self.feed = ChangeFeed(store, self.cache.evict)
        # The request path's and the app's entry points, bound once.
        self.authenticate = self.cache.authenticate
        self.evict = self.cache.evict
        self.run_invalidation = self.feed.run
        self.flush_last_used = self.last_used.flush
        self.invalidation_live = self.feed.live

    def __repr__(self) -> str:
        return (
            f"<KeyService {type(self._store).__name__} [{len(self.cache)} cached"
            f" | {len(self.last_used)} last-used pending]>"
        )

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
        priority: Priority = DEFAULT_PRIORITY,
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
            priority=priority,
        )
        return await self._write(record), format_key(key_id, secret)

    async def rotate(
        self, key_id: str, *, grace_seconds: float = DEFAULT_GRACE_SECONDS
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
        """Change what :meth:`KeyRecord.updated` allows (name, models, expiry, limits,
        priority).

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
                self.cache.evict(record.id)

    async def _write(self, record: KeyRecord) -> KeyRecord:
        record = record.written(self._clock())  # the next version: merges keep the newest
        try:
            await self._store.put(record)
        finally:
            self.cache.evict(record.id)  # even on error: the store may have applied the write
        return record
