"""Which key store a config means.

The router, the admin API and the CLI open stores the same way: Redis when one is configured
(shared by every router), else the embedded SQLite file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from router.auth.keystore import KeyStore
from router.auth.sqlite_store import SQLiteStore
from router.config import Config

if TYPE_CHECKING:
    import redis.asyncio


def open_store(config: Config, client: redis.asyncio.Redis | None) -> KeyStore:
    """The config's store; ``client`` is required when the config names a Redis."""
    if config.redis is not None:
        if client is None:
            raise ValueError("a Redis client is needed for a config with redis")
        from router.auth.redis_store import RedisStore  # noqa: PLC0415 (only with a Redis)

        return RedisStore(client, prefix=config.redis.prefix)
    return SQLiteStore(Path(config.store.path))
