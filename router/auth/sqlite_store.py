"""The embedded key store: one SQLite file, shared by the router processes of one host.

Every put commits its own transaction (``synchronous=FULL``: a put that returned survives a power
cut) and appends a row to ``changes`` in the same transaction, so a change is announced exactly
when it becomes visible. Readers in other processes poll ``changes`` every 0.25 s, which is what
makes a revoke visible everywhere on the host within a second. WAL mode lets those polls and
authentications read while a write is in progress.

``last_used_at`` lives in its own column, raised with ``max()`` by :meth:`SQLiteStore.touch`, so
the frequent last-use writes never rewrite a record and never count as a change.

SQLite calls block, so each runs in a worker thread (``asyncio.to_thread``) on the one
connection, serialised by a lock.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import functools
import os
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from router.auth.keystore import EVICT_ALL
from router.auth.records import KeyRecord, newest

T = TypeVar("T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, json TEXT NOT NULL, last_used_at REAL)",
    "CREATE TABLE IF NOT EXISTS changes ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, key_id TEXT NOT NULL, at REAL NOT NULL)",
)
# max(coalesce(a, b), coalesce(b, a)): the larger of two nullable values, NULL only if both are.
_PUT = (
    "INSERT INTO keys (id, json, last_used_at) VALUES (:id, :json, :used)"
    " ON CONFLICT (id) DO UPDATE SET json = excluded.json, last_used_at ="
    " max(coalesce(keys.last_used_at, excluded.last_used_at),"
    " coalesce(excluded.last_used_at, keys.last_used_at))"
)
_TOUCH = "UPDATE keys SET last_used_at = max(coalesce(last_used_at, :at), :at) WHERE id = :id"
# A poller more than this far behind may miss changes; it notices the gap in ``seq`` and
# yields EVICT_ALL, and the service's cache TTL bounds staleness in any case.
CHANGES_KEPT_SECONDS = 600.0


class SQLiteStore:
    """Key records in a SQLite file (created with its parent directory if missing)."""

    def __init__(self, path: str | os.PathLike[str], *, poll_interval: float = 0.25) -> None:
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "open" if self._db else "not opened"
        return f"<SQLiteStore {str(self.path)!r} {state}>"

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed.is_set():
            raise RuntimeError("the key store is closed")
        return await asyncio.to_thread(self._locked, work)

    def _locked(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._db is None:
                self._db = _connect(self.path)
            return work(self._db)

    async def get(self, key_id: str) -> KeyRecord | None:
        """The record, or None."""
        return await self._run(lambda db: _get(db, key_id))

    async def list(self) -> builtins.list[KeyRecord]:
        """Every record, newest first."""
        records = await self._run(_all)
        return sorted(records, key=lambda r: (r.created_at, r.id), reverse=True)

    async def put(self, record: KeyRecord) -> None:
        """Insert the record or replace an older copy, and append the change, in one committed
        transaction (a newer stored copy stays: :func:`~router.auth.records.newest`)."""
        await self._run(lambda db: _put(db, [record], time.time(), tie=True))

    async def merge(self, records: Iterable[KeyRecord]) -> int:
        """Write each record the file has no newer copy of, in one transaction; how many."""
        batch = builtins.list(records)
        return await self._run(lambda db: _put(db, batch, time.time(), tie=False))

    async def touch(self, last_used: Mapping[str, float]) -> None:
        """Raise ``last_used_at`` of existing keys; one transaction, not a change."""
        rows = [{"id": key_id, "at": at} for key_id, at in last_used.items()]
        if rows:
            await self._run(lambda db: _touch(db, rows))

    async def changes(self) -> AsyncGenerator[str, None]:
        """Ids changed by any process on this file, polled every ``poll_interval`` seconds."""
        if self._closed.is_set():
            return
        last = await self._run(_last_seq)
        yield EVICT_ALL
        while not await _wait(self._closed, self.poll_interval):
            for seq, key_id in await self._run(functools.partial(_changes_after, after=last)):
                if seq != last + 1:  # rows were pruned before we read them
                    yield EVICT_ALL
                last = seq
                yield key_id

    async def close(self) -> None:
        """Close the connection (after any query in flight); ``changes()`` iterators end."""
        self._closed.set()
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` got set within ``seconds``."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE takes the write lock up front,
    # so two processes never deadlock upgrading read locks).
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        with _transaction(db):
            for statement in _SCHEMA:
                db.execute(statement)
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _record(json: str, last_used_at: float | None) -> KeyRecord:
    record = KeyRecord.from_json(json)
    if last_used_at is not None and last_used_at != record.last_used_at:
        record = dataclasses.replace(record, last_used_at=last_used_at)
    return record


def _get(db: sqlite3.Connection, key_id: str) -> KeyRecord | None:
    row = db.execute("SELECT json, last_used_at FROM keys WHERE id = ?", (key_id,)).fetchone()
    return None if row is None else _record(*row)


def _all(db: sqlite3.Connection) -> builtins.list[KeyRecord]:
    return [_record(*row) for row in db.execute("SELECT json, last_used_at FROM keys")]


def _put(db: sqlite3.Connection, records: Iterable[KeyRecord], now: float, *, tie: bool) -> int:
    """Write each record unless a newer copy is stored (a tie writes if ``tie``); how many."""
    written = 0
    with _transaction(db):
        for record in records:
            stored = _get(db, record.id)
            if stored is not None and not _wins(record, stored, tie=tie):
                continue
            json = record.to_json().decode()
            db.execute(_PUT, {"id": record.id, "json": json, "used": record.last_used_at})
            db.execute("INSERT INTO changes (key_id, at) VALUES (?, ?)", (record.id, now))
            written += 1
        db.execute("DELETE FROM changes WHERE at < ?", (now - CHANGES_KEPT_SECONDS,))
    return written


def _wins(incoming: KeyRecord, stored: KeyRecord, *, tie: bool) -> bool:
    if tie and incoming.rank == stored.rank:
        return True
    return newest(stored, incoming) is incoming


def _touch(db: sqlite3.Connection, rows: builtins.list[dict[str, object]]) -> None:
    with _transaction(db):
        db.executemany(_TOUCH, rows)


def _last_seq(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT max(seq) FROM changes").fetchone()
    # An empty table may still have handed out numbers: AUTOINCREMENT remembers the highest.
    if row[0] is None:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _changes_after(db: sqlite3.Connection, after: int) -> builtins.list[tuple[int, str]]:
    query = "SELECT seq, key_id FROM changes WHERE seq > ? ORDER BY seq"
    return [(int(s), str(k)) for s, k in db.execute(query, (after,))]
