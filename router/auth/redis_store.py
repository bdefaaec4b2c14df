"""The shared key store: Redis, for any number of router processes and hosts.

Layout (``sy:`` is the default prefix)::

    sy:key:{<id>}     the record's JSON; braces make the id a hash tag
    sy:keys           set of every key id
    sy:last-used      sorted set, id -> last use; ZADD GT only ever raises a score
    sy:key-changes    pub/sub channel: the id of every record put
    sy:keys-epoch     a random marker set by the last restore: gone means Redis lost its data
                      ("restoring:<token>", expiring, while a router restores)

Every write goes through one Lua script (``merge.lua``) that keeps the newer copy of a record
(:func:`~router.auth.records.newest`: revocation wins, then the version), so a stale write, a
restore or an import never rolls a key back.

Pub/sub is fire-and-forget: a subscriber that was disconnected has missed messages. So
:meth:`RedisStore.changes` yields ``"*"`` (evict everything) whenever it (re)subscribes, and
resubscribes after a connection loss with a bounded, doubling pause.

This is a single-node store: the router refuses a Redis Cluster at start (router.redisconn).
On a cluster the ids set, the last-used set and each record would sit in different slots, so
the merge script, which writes them together, could not stay as it is.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from importlib import resources
from typing import Any, TypeVar

import redis.asyncio
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.auth.keystore import EVICT_ALL
from router.auth.records import KeyRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

_MERGE = resources.files("router.auth").joinpath("merge.lua").read_text(encoding="utf-8")
# Compare and set: the claim becomes the epoch only if it is still the claimer's.
_SETTLE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then"
    " redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0"
)
# Records per merge script call: about 30 ms of Redis's time on a loaded 2-core machine, so a
# restore of many keys never holds up the rate limiter's calls for long.
_MERGE_BATCH = 1000
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
_MIN_PAUSE = 0.05
_MAX_PAUSE = 2.0
# How often the listener wakes without a message, to notice close() and reconnects.
_LISTEN_TIMEOUT = 1.0


class _WatchedPubSub(PubSub):
    """A PubSub that counts the reconnects redis-py performs on its own.

    redis-py reconnects and resubscribes inside ``get_message`` when the connection drops
    (``on_connect`` runs only for those reconnects, not the first connect); the messages
    published in between are lost, and this count is how the listener learns of it.
    """

    reconnects = 0

    async def on_connect(self, connection: Connection) -> None:
        self.reconnects += 1
        await super().on_connect(connection)


class RedisStore:
    """Key records in Redis. ``client`` stays the caller's unless built by :meth:`from_url`."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str = "sy:") -> None:
        self.client = client
        self.prefix = prefix
        self.channel = f"{prefix}key-changes"
        self._ids = f"{prefix}keys"
        self._last_used = f"{prefix}last-used"
        self._epoch = f"{prefix}keys-epoch"
        self._merge_script = client.register_script(_MERGE)
        self._settle = client.register_script(_SETTLE)
        self._owns_client = False
        self._closed = asyncio.Event()

    @classmethod
    def from_url(cls, url: str, prefix: str = "sy:") -> RedisStore:
        """A store with its own client, closed by :meth:`close`."""
        store = cls(redis.asyncio.Redis.from_url(url), prefix)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"<RedisStore {self.prefix!r}{' closed' if self._closed.is_set() else ''}>"

    def record_key(self, key_id: str) -> str:
        """The Redis key holding the record of ``key_id``."""
        return f"{self.prefix}key:{{{key_id}}}"

    async def _retry_once(self, operation: Callable[[], Awaitable[T]]) -> T:
        # After a Redis restart every idle pooled connection is dead, and a client built by
        # from_url() does not retry. Every operation here is idempotent (a second PUBLISH only
        # evicts twice), so drop the idle connections and try once more on fresh ones.
        try:
            return await operation()
        except RedisConnectionError:
            await self.client.connection_pool.disconnect(inuse_connections=False)
            return await operation()

    async def get(self, key_id: str) -> KeyRecord | None:
        """The record, or None."""
        raw, last_used = await self._retry_once(lambda: self._get(key_id))
        return None if raw is None else _record(raw, last_used)

    async def _get(self, key_id: str) -> builtins.list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.record_key(key_id))
            pipe.zscore(self._last_used, key_id)
            return await pipe.execute()

    async def list(self) -> builtins.list[KeyRecord]:
        """Every record, newest first."""
        raws, last_used = await self._retry_once(self._list)
        records = [_record(raw, used) for raw, used in zip(raws, last_used, strict=True) if raw]
        return sorted(records, key=lambda r: (r.created_at, r.id), reverse=True)

    async def _list(self) -> tuple[builtins.list[Any], builtins.list[Any]]:
        ids = sorted(_text(member) for member in await self.client.smembers(self._ids))
        if not ids:
            return [], []
        async with self.client.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.get(self.record_key(key_id))
            pipe.zmscore(self._last_used, ids)
            *raws, last_used = await pipe.execute()
        return raws, last_used

    async def put(self, record: KeyRecord) -> None:
        """SET the record unless a newer copy is stored, SADD its id, PUBLISH the change."""
        await self._retry_once(lambda: self._merge([record], tie=True))

    async def merge(self, records: Iterable[KeyRecord]) -> int:
        """Write each record the store has no newer copy of; how many were written.

        In calls of :data:`_MERGE_BATCH` records: each is atomic, and none blocks Redis long.
        """
        batch = builtins.list(records)
        written = 0
        for start in range(0, len(batch), _MERGE_BATCH):
            merge = functools.partial(self._merge, batch[start : start + _MERGE_BATCH], tie=False)
            written += await self._retry_once(merge)
        return written

    async def epoch(self) -> str | None:
        """The epoch marker: set by the last restore, gone when Redis lost its data."""
        raw = await self._retry_once(lambda: self.client.get(self._epoch))
        return None if raw is None else _text(raw)

    async def claim(self, token: str, ttl: float) -> bool:
        """Set the marker to ``token`` for ``ttl`` seconds if there is none (SET NX PX): of
        the routers that find it gone, one restores; if it dies, the claim expires."""
        claim = functools.partial(self.client.set, self._epoch, token, nx=True, px=int(ttl * 1000))
        return bool(await self._retry_once(claim))

    async def settle(self, token: str, epoch: str) -> bool:
        """Replace the claim ``token`` by ``epoch``, for good; False if the claim was lost."""
        settle = functools.partial(self._settle, keys=[self._epoch], args=[token, epoch])
        return bool(await self._retry_once(settle))

    async def _merge(self, records: Iterable[KeyRecord], *, tie: bool) -> int:
        keys = [self._ids, self._last_used]
        args: builtins.list[str | bytes | int | float] = [self.channel, int(tie)]
        for record in records:
            keys.append(self.record_key(record.id))
            revoked, version, updated = record.rank
            used = "" if record.last_used_at is None else repr(record.last_used_at)
            args += [record.id, record.to_json(), int(revoked), version, repr(updated), used]
        return int(await self._merge_script(keys=keys, args=args))

    async def touch(self, last_used: Mapping[str, float]) -> None:
        """Raise last-use times (one ZADD GT; never lowers one); not a change."""
        if last_used:
            mapping = dict(last_used)
            await self._retry_once(lambda: self.client.zadd(self._last_used, mapping, gt=True))

    async def changes(self) -> AsyncGenerator[str, None]:
        """Ids put by any process; ``"*"`` after every (re)subscription."""
        pause = _MIN_PAUSE
        while not self._closed.is_set():
            pubsub = _WatchedPubSub(self.client.connection_pool, ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                pause = _MIN_PAUSE
                yield EVICT_ALL  # listening from now on; earlier changes may have been missed
                seen = 0
                while not self._closed.is_set():
                    key_id = await _next_change(pubsub)
                    if pubsub.reconnects != seen:
                        seen = pubsub.reconnects
                        yield EVICT_ALL
                    if key_id is not None:
                        yield key_id
            except _CONNECTION_ERRORS as exc:
                if self._closed.is_set():  # close() took the connection away
                    return
                log.warning("key changes: subscription lost (%r); again in %.2f s", exc, pause)
            else:
                return  # closed
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)

    async def close(self) -> None:
        """End ``changes()`` iterators (within a second) and close an owned client."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._owns_client:
            await self.client.aclose()


async def _next_change(pubsub: PubSub) -> str | None:
    message: dict[str, Any] | None = await pubsub.get_message(
        ignore_subscribe_messages=True, timeout=_LISTEN_TIMEOUT
    )
    if message is None or message.get("type") != "message":
        return None
    return _text(message["data"])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _record(raw: bytes | str, last_used: float | None) -> KeyRecord:
    record = KeyRecord.from_json(raw)
    if last_used is not None and (record.last_used_at or 0.0) < last_used:
        record = dataclasses.replace(record, last_used_at=last_used)
    return record
