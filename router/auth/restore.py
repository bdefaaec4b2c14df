"""Keys survive a Redis that comes back empty: each router keeps a copy and writes it back.

Redis may run without persistence, or lose its data in a failover; the key records are the one
thing users cannot re-create. So :class:`RestoringStore` wraps the :class:`RedisStore` of a
router and keeps a :class:`~router.auth.snapshot.KeySnapshot` of every record (hashes only,
revoked keys included), current from the store's change feed, and saved to a file.

Redis holds an epoch marker (``<prefix>keys-epoch``, a random string). A Redis that lost its
data has lost the marker too. A router checks it every second, whenever the change feed
resubscribes (Redis restarted) and whenever the store misses a key the snapshot knows; when it
is gone, the router claims the restore (``SET NX`` of an expiring ``restoring:`` marker), so of
many routers exactly one restores (logged at error level, counted in
``switchyard_keystore_restores_total``), merges its snapshot in, and sets a new epoch. The
others see an epoch they do not know and merge their own copies in, which adds only what is
newer (a rotation the restorer had not seen yet); meanwhile a lookup that misses writes its
one record back at once. Merges keep the newest copy of each record and a revoked one over any
other (:func:`~router.auth.records.newest`), so nothing is rolled back or un-revoked.

This is anti-entropy between replicas, as Dynamo and Cassandra repair with it; the marker is
the generation number a restarted peer announces there, here written by whoever restores.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path

from redis.exceptions import RedisError

from router.auth.keystore import EVICT_ALL
from router.auth.records import KeyRecord
from router.auth.redis_store import RedisStore
from router.auth.snapshot import KeySnapshot, save

log = logging.getLogger(__name__)

STORE_FAILURES = (RedisError, OSError)
CHECK_SECONDS = 1.0
RESYNC_SECONDS = 30.0
LOG_EVERY_SECONDS = 30.0
RESTORING = "restoring:"
"""The marker while a router restores: it expires, so a router that dies restoring is
replaced by another."""
CLAIM_SECONDS = 60.0


class RestoringStore:
    """A :class:`RedisStore` (the :class:`~router.auth.keystore.KeyStore` contract) that keeps a
    snapshot of every record and restores the store from it after a reset."""

    def __init__(
        self,
        store: RedisStore,
        snapshot: KeySnapshot,
        *,
        path: Path | None = None,
        on_restore: Callable[[], None] | None = None,
        check_seconds: float = CHECK_SECONDS,
        resync_seconds: float = RESYNC_SECONDS,
    ) -> None:
        self.store = store
        self.snapshot = snapshot
        self.path = path
        self.restores = 0
        self._on_restore = on_restore
        self._check_seconds = check_seconds
        self._resync_seconds = resync_seconds
        self._lock = asyncio.Lock()
        self._started = self._done = 0  # numbered checks: see check()
        self._marker: str | None = None  # as the last check found it
        self._claim: str | None = None  # this router's restore in progress
        self._claim_written = 0
        self._failing_since: float | None = None

    def __repr__(self) -> str:
        return f"<RestoringStore {self.store!r} {self.snapshot!r} [{self.restores} restores]>"

    # --- the KeyStore contract ------------------------------------------------------------

    async def get(self, key_id: str) -> KeyRecord | None:
        """The stored record; a key the snapshot knows but the store lacks triggers a check."""
        record = await self.store.get(key_id)
        if record is None and key_id in self.snapshot:
            await self.check()  # Redis may have come back empty: restore, then read again
            record = await self.store.get(key_id)
            if record is None:
                await self._write_back([self.snapshot.records[key_id]])
                record = await self.store.get(key_id)
        if record is not None:
            self.snapshot.merge([record])
        return record

    async def list(self) -> builtins.list[KeyRecord]:
        """Every record; if the store lacks some the snapshot knows, check first."""
        records = await self.store.list()
        if len(records) < len(self.snapshot):
            await self.check()
            records = await self.store.list()
            listed = {record.id for record in records}
            missing = [known for known in self.snapshot if known.id not in listed]
            if missing:
                await self._write_back(missing)
                records = await self.store.list()
        self.snapshot.merge(records)
        return records

    async def put(self, record: KeyRecord) -> None:
        await self.store.put(record)
        self.snapshot.merge([record])

    async def merge(self, records: Iterable[KeyRecord]) -> int:
        batch = builtins.list(records)
        written = await self.store.merge(batch)
        self.snapshot.merge(batch)
        return written

    async def touch(self, last_used: Mapping[str, float]) -> None:
        await self.store.touch(last_used)

    async def changes(self) -> AsyncIterator[str]:
        """The store's feed, keeping the snapshot current: each changed record is read; a
        resubscription (perhaps a restarted Redis) checks the marker before it is passed on."""
        async with contextlib.aclosing(self.store.changes()) as changes:
            async for key_id in changes:
                if key_id == EVICT_ALL:
                    await self.check()
                else:
                    await self._learn(key_id)
                yield key_id

    async def close(self) -> None:
        await self.store.close()

    # --- finding a reset and restoring ----------------------------------------------------

    async def check(self) -> None:
        """Restore the store if it was reset; merge in what it lacks if another router did.

        Never raises (a store that is down is logged, and the next check tries again). Callers
        that wait while a check runs share the next one rather than queueing one each.
        """
        asked = self._started
        async with self._lock:
            if self._done > asked:  # a check that started after we asked has finished
                return
            self._started += 1
            try:
                await self._check()
            except STORE_FAILURES as exc:
                self._failed(exc)
            else:
                self._recovered()
            finally:
                self._done = self._started

    async def _check(self) -> None:
        marker = self._marker = await self.store.epoch()
        if marker is not None and marker == self.snapshot.epoch:
            return
        if marker is not None and marker.startswith(RESTORING) and marker != self._claim:
            return  # another router is restoring: the next check merges in what it lacked
        self.snapshot.merge(await self.store.list())  # what the store holds joins the copy
        if marker is None or marker == self._claim:
            await self._restore()
            return
        # An epoch this router has not seen: another router restored, or this one was away.
        written = await self.store.merge(self.snapshot)
        if written:
            fields = {"keys": written, "known": len(self.snapshot)}
            log.warning("key store: wrote back newer key records", extra={"fields": fields})
        self.snapshot.set_epoch(marker)

    async def _restore(self) -> None:
        """Claim the restore (an expiring marker), merge every record, then set the epoch."""
        if not self.snapshot:  # nothing known: nothing to restore (a new deployment)
            return
        if self._claim is None:  # else a restore of ours failed half-way: go on with it
            token = RESTORING + secrets.token_hex(16)
            if not await self.store.claim(token, CLAIM_SECONDS):
                return  # another router claimed it a moment ago
            self._claim, self._claim_written = token, 0
        self._claim_written += await self.store.merge(self.snapshot)
        epoch = secrets.token_hex(16)
        settled = await self.store.settle(self._claim, epoch)
        self._claim = None
        if settled:
            self.snapshot.set_epoch(epoch)
            self._restored(self._claim_written)

    def _restored(self, written: int) -> None:
        if not written:  # the marker was missing but nothing else: an upgrade, a new store
            log.info("key store epoch marker set")
            return
        self.restores += 1
        if self._on_restore is not None:
            self._on_restore()
        fields = {"keys": written, "known": len(self.snapshot)}
        log.error(
            "key store was reset (its epoch marker is gone): restored from this router's snapshot",
            extra={"fields": fields},
        )

    async def _write_back(self, records: builtins.list[KeyRecord]) -> None:
        # The marker survived but these records did not: evicted (a maxmemory policy of
        # allkeys-*), or deleted by hand. No operation deletes a key (revoking keeps it), so a
        # known record missing from the store was lost, and merging it back is safe.
        written = await self.store.merge(records)
        if written and not (self._marker or "").startswith(RESTORING):  # else it is no news
            fields = {"keys": written, "key_ids": [record.id for record in records[:10]]}
            log.warning(
                "key records missing from the store; written back", extra={"fields": fields}
            )

    async def _learn(self, key_id: str) -> None:
        try:
            record = await self.store.get(key_id)
        except STORE_FAILURES as exc:
            self._failed(exc)  # the next resync reads it
            return
        if record is not None:
            self.snapshot.merge([record])

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._failing_since is None or now - self._failing_since >= LOG_EVERY_SECONDS:
            self._failing_since = now
            fields = {"error": type(exc).__name__}
            log.warning("key store check failed; retrying", extra={"fields": fields})

    def _recovered(self) -> None:
        self._failing_since = None

    # --- the background task ----------------------------------------------------------------

    async def run(self) -> None:
        """Check every ``check_seconds``, read every record every ``resync_seconds`` (a missed
        change cannot linger), save the snapshot when it changed; run as an owned task."""
        await warn_without_persistence(self.store)
        next_resync = time.monotonic()  # at once: keys made while this router was down
        while True:
            await self.check()
            if time.monotonic() >= next_resync:
                next_resync = time.monotonic() + self._resync_seconds
                with contextlib.suppress(*STORE_FAILURES):
                    await self.list()
            await self.save()
            await asyncio.sleep(self._check_seconds)

    async def save(self) -> None:
        """Write the snapshot file if the snapshot changed since the last save."""
        if self.path is None or not self.snapshot.changed:
            return
        self.snapshot.changed = False
        data = self.snapshot.to_json(self.store.prefix)
        try:
            await asyncio.to_thread(save, self.path, data)
        except OSError as exc:
            self.snapshot.changed = True  # try again next round
            log.warning("could not save the key snapshot", extra={"fields": {"error": str(exc)}})


async def warn_without_persistence(store: RedisStore) -> None:
    """Log a warning if Redis keeps no data across a restart (no RDB saves, no AOF), or may
    evict key records to free memory (a ``maxmemory-policy`` of ``allkeys-*``).

    Managed Redis often disables CONFIG: then nothing is known and nothing is said.
    """
    try:
        config: dict[str | None, str | None] = {}
        for name in ("save", "appendonly", "maxmemory-policy"):
            config.update(await store.client.config_get(name))
    except STORE_FAILURES:  # CONFIG refused (a ResponseError), or Redis unreachable
        return
    if not _text(config.get("save")) and _text(config.get("appendonly")) == "no":
        log.warning(
            "Redis has no persistence (save '' and appendonly no): API keys live on in each"
            " router's snapshot and are restored after a restart, but enable appendonly yes"
        )
    if _text(config.get("maxmemory-policy")).startswith("allkeys"):
        log.warning(
            "Redis may evict API key records (maxmemory-policy allkeys-*): routers write them"
            " back from their snapshots, but use noeviction or a volatile-* policy"
        )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
