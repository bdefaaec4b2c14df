"""Which home store a config means: Redis beside the keys when configured, else SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from router.config import Config
from router.homes.record import Cached, HomeStore
from router.homes.sqlite import SQLiteHomes

if TYPE_CHECKING:  # redis is imported only with a Redis configured (router.resources)
    import redis.asyncio

DAY = 86_400.0


def open_homes(config: Config, client: redis.asyncio.Redis | None) -> Cached:
    """The config's home store behind the in-process cache."""
    ttl = config.store.homes_ttl_days * DAY
    store: HomeStore
    if config.redis is not None:
        if client is None:
            raise ValueError("a Redis client is needed for a config with redis")
        from router.homes.redis import RedisHomes  # noqa: PLC0415 (above)

        store = RedisHomes(client, config.redis.prefix, ttl)
    else:
        store = SQLiteHomes(Path(config.store.path).with_name("homes.sqlite3"), ttl)
    return Cached(store)
