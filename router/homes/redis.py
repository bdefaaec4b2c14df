"""Homes in Redis: ``<prefix>home:{<id>}`` holds the record's JSON, with a TTL (SET PX).

The key store's client is used (router.redisconn's shared client). The braces make the id a
hash tag, as the key records' do. A write is one round trip; a read another.
"""

from __future__ import annotations

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError

from router.homes.record import Home


class RedisHomes:
    def __init__(self, client: redis.asyncio.Redis, prefix: str, ttl: float) -> None:
        self.client = client
        self.prefix = prefix
        self._ttl_ms = max(1, int(ttl * 1000))

    def key(self, object_id: str) -> str:
        return f"{self.prefix}home:{{{object_id}}}"

    async def get(self, object_id: str) -> Home | None:
        try:
            raw = await self.client.get(self.key(object_id))
        except RedisConnectionError:  # idle connections dead after a Redis restart: once more
            raw = await self.client.get(self.key(object_id))
        return None if raw is None else Home.from_json(raw)

    async def put(self, object_id: str, home: Home) -> None:
        try:
            await self.client.set(self.key(object_id), home.to_json(), px=self._ttl_ms)
        except RedisConnectionError:
            await self.client.set(self.key(object_id), home.to_json(), px=self._ttl_ms)

    async def forget(self, object_id: str) -> None:
        await self.client.delete(self.key(object_id))

    async def close(self) -> None:
        """The client is the key store's: closed with it."""

    def __repr__(self) -> str:
        return f"<RedisHomes {self.prefix!r}>"
