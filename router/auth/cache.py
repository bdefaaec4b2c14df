"""Authentication from an in-process record cache, with no store round trip for a known key.

Each write evicts the local entry at once and the change feed (:mod:`router.auth.feed`) evicts
what other processes change, within a second; ``cache_ttl`` bounds staleness even if a
notification were lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from router.auth.keyformat import parse_key
from router.auth.keystore import EVICT_ALL, KeyStore
from router.auth.last_used import LastUsed
from router.auth.records import KeyRecord


class KeyCache:
    """Records by key id, read through from the store; unknown ids are cached too (as None)."""

    def __init__(
        self,
        store: KeyStore,
        last_used: LastUsed,
        *,
        clock: Callable[[], float],
        cache_ttl: float,
        max_cached: int,
        pepper: bytes | None,
        refresh_after: float,
    ) -> None:
        self._store = store
        self._last_used = last_used
        self._clock = clock
        self._cache_ttl = cache_ttl
        self._max_cached = max_cached
        self._pepper = pepper
        self._refresh_after = refresh_after
        # key id -> (record or None for "no such key", monotonic time it was fetched)
        self._cache: dict[str, tuple[KeyRecord | None, float]] = {}
        self._evictions = 0  # bumped on every eviction; see _lookup

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
        self._last_used.note(key_id, now)
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

    def __len__(self) -> int:
        return len(self._cache)
