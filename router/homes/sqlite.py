"""Homes in a SQLite file beside the key store's (``homes.sqlite3``): every router process of
the host shares it, and it survives a restart.

One connection, used from worker threads under a lock, as the key store does. ``synchronous =
NORMAL`` in WAL mode: a power cut may lose the last homes written (those responses then answer
404), never corrupt the file; keys, which users cannot re-create, are written with FULL.
Expired rows are read as absent and swept a few at a time on writes, so the file stays bounded
by the live homes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from router.homes.record import Home

T = TypeVar("T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS homes (id TEXT PRIMARY KEY, model TEXT NOT NULL,"
    " backend TEXT NOT NULL, owner TEXT NOT NULL, expires REAL NOT NULL)"
)
_GET = "SELECT model, backend, owner FROM homes WHERE id = ? AND expires > ?"
_PUT = "INSERT OR REPLACE INTO homes (id, model, backend, owner, expires) VALUES (?, ?, ?, ?, ?)"
_SWEEP = "DELETE FROM homes WHERE id IN (SELECT id FROM homes WHERE expires <= ? LIMIT 16)"
_FORGET = "DELETE FROM homes WHERE id = ?"


class SQLiteHomes:
    def __init__(self, path: Path, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._ttl = ttl
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def get(self, object_id: str) -> Home | None:
        now = self._clock()
        row = await self._run(lambda db: db.execute(_GET, (object_id, now)).fetchone())
        return None if row is None else Home(*row)

    async def put(self, object_id: str, home: Home) -> None:
        now = self._clock()
        row = (object_id, home.model, home.backend, home.owner, now + self._ttl)

        def put(db: sqlite3.Connection) -> None:
            with db:
                db.execute(_PUT, row)
                db.execute(_SWEEP, (now,))

        await self._run(put)

    async def forget(self, object_id: str) -> None:
        def forget(db: sqlite3.Connection) -> None:
            with db:
                db.execute(_FORGET, (object_id,))

        await self._run(forget)

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await asyncio.to_thread(close)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._locked, work)

    def _locked(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._db is None:
                self._db = _connect(self.path)
            return work(self._db)

    def __repr__(self) -> str:
        return f"<SQLiteHomes {str(self.path)!r}>"


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        with db:
            db.execute(_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db
