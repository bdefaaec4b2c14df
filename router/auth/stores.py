"""Which key store a config means, and what a failing store raises.

The router, the admin API and the CLI open and judge stores the same way: Redis when one is
configured (shared by every router), else the embedded SQLite file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import redis.asyncio
from redis.exceptions import RedisError

from router.auth.redis_store import RedisStore
from router.auth.sqlite_store import SQLiteStore
from router.auth.store import KeyStore
from router.config import Config

STORE_ERRORS = (RedisError, sqlite3.Error, OSError)
"""A store that is down or unreachable: a 503 to clients, never a 500."""


def open_store(config: Config, client: redis.asyncio.Redis | None) -> KeyStore:
    """The config's store; ``client`` is required when the config names a Redis."""
    if config.redis is not None:
        if client is None:
            raise ValueError("a Redis client is needed for a config with redis")
        return RedisStore(client, prefix=config.redis.prefix)
    return SQLiteStore(Path(config.store.path))
