"""The key store contract: what every store does, and what a failing one raises.

:class:`KeyStore` is implemented by :class:`~router.auth.sqlite_store.SQLiteStore` (one host)
and :class:`~router.auth.redis_store.RedisStore` (any number of hosts); both announce every
write to every process, the writer included. :func:`~router.auth.open_store.open_store` picks
one for a config; :class:`~router.auth.service.KeyService` works through it.
"""

from __future__ import annotations

import builtins
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Protocol

from router.auth.records import KeyRecord

EVICT_ALL = "*"
"""The id ``changes()`` yields when changes may have been missed: drop every cached record."""

_LOCAL_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, OSError)


def store_errors() -> tuple[type[Exception], ...]:
    """What a store that is down or unreachable raises: a 503 to clients, never a 500.

    A function for ``except`` clauses (evaluated only when something is raised), so that redis
    is imported only where a Redis is configured: only a Redis store can raise its errors, and
    it has imported them by then (the package costs ~7 MiB of an idle router's memory)."""
    errors = sys.modules.get("redis.exceptions")
    if errors is None:
        return _LOCAL_ERRORS
    return (errors.RedisError, *_LOCAL_ERRORS)


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
