"""Both key stores, and KeyService over them, against a real SQLite file and a real Redis.

Two stores opened on the same file or the same Redis stand in for two router processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import asynccontextmanager

import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff

from router.auth.keyformat import hash_secret, new_key_id, new_secret
from router.auth.keystore import EVICT_ALL, KeyStore
from router.auth.records import KeyLimits, KeyRecord
from router.auth.redis_store import RedisStore
from router.auth.service import KeyService
from router.auth.sqlite_store import SQLiteStore
from tests.redis_server import RedisServer

NOW = 1_700_000_000.0
PROPAGATION_BOUND = 1.0  # DESIGN.md §4: every process sees a revoke within a second

OpenStore = Callable[[], KeyStore]


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
async def open_store(request, tmp_path) -> AsyncIterator[OpenStore]:
    """Opens stores over one shared file / one Redis namespace; closes them all afterwards."""
    opened: list[KeyStore] = []
    if request.param == "sqlite":
        path = tmp_path / "state" / "keys.db"  # the parent directory does not exist yet

        def new_store() -> KeyStore:
            return SQLiteStore(path)
    else:
        url = request.getfixturevalue("redis_server").url
        prefix = f"sy-{uuid.uuid4().hex[:8]}:"

        def new_store() -> KeyStore:
            return RedisStore.from_url(url, prefix)

    def tracked() -> KeyStore:
        opened.append(new_store())
        return opened[-1]

    yield tracked
    for store in opened:
        await store.close()


@asynccontextmanager
async def invalidating(*services: KeyService) -> AsyncIterator[None]:
    """Run each service's invalidation loop as an owned task (listening once this yields),
    cancelled on exit."""
    tasks = [
        asyncio.create_task(s.run_invalidation(), name=f"invalidate-{i}")
        for i, s in enumerate(services)
    ]
    try:
        for service in services:
            await asyncio.wait_for(service.invalidation_live.wait(), 5)
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def wait_until(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Poll ``check`` until true; return the elapsed time, fail after ``within`` seconds."""
    start = time.monotonic()
    while not await check():
        elapsed = time.monotonic() - start
        assert elapsed < within, f"not true after {elapsed:.2f} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def stored_record(name: str = "k", created_at: float = NOW, **changes) -> KeyRecord:
    return KeyRecord(
        id=new_key_id(),
        name=name,
        created_at=created_at,
        secret_hash=hash_secret(new_secret()),
        **changes,
    )


# --- the store contract ---------------------------------------------------------------------


async def test_put_get_list(open_store):
    store = open_store()
    assert await store.get(new_key_id()) is None
    assert await store.list() == []
    old = stored_record("old", NOW, models=("gpt-4o*",), limits=KeyLimits(rpm=5))
    new = stored_record("new", NOW + 10, expires_at=NOW + 99)
    await store.put(old)
    await store.put(new)
    assert await store.get(old.id) == old
    assert await store.get(new.id) == new
    assert await store.list() == [new, old]  # newest first
    renamed = dataclasses.replace(old, name="renamed", state="revoked")
    await store.put(renamed)  # replace
    assert await store.list() == [new, renamed]


async def test_a_late_put_never_rolls_back_a_newer_copy_nor_unrevokes(open_store):
    """A rotate that read the key before a revoke, and writes after it, loses (DESIGN.md §4)."""
    store = open_store()
    record = stored_record().written(NOW)
    rotated = dataclasses.replace(record, secret_hash="rotated").written(NOW + 1)
    await store.put(rotated)
    await store.put(record)  # an older version, written late
    assert await store.get(record.id) == rotated
    revoked = dataclasses.replace(rotated, state="revoked").written(NOW + 2)
    await store.put(revoked)
    await store.put(dataclasses.replace(rotated, name="renamed").written(NOW + 3))
    assert await store.get(record.id) == revoked


async def test_merge_writes_only_what_is_newer(open_store):
    store = open_store()
    a, b = stored_record("a").written(NOW), stored_record("b").written(NOW)
    assert await store.merge([a, b]) == 2
    assert await store.merge([a, b]) == 0  # idempotent: a tie keeps the stored copy
    newer = dataclasses.replace(a, name="a2").written(NOW + 1)
    assert await store.merge([newer, b, a]) == 1
    assert await store.get(a.id) == newer
    assert {record.name for record in await store.list()} == {"a2", "b"}


async def test_touch_keeps_the_latest_time_and_is_not_a_change(open_store):
    store = open_store()
    touched, other = stored_record("touched"), stored_record("other")
    await store.put(touched)
    changes = store.changes()
    try:
        assert await asyncio.wait_for(anext(changes), 5) == EVICT_ALL  # listening
        await store.touch({touched.id: NOW + 100})
        await store.touch({touched.id: NOW + 50, "unknownid234": NOW})
        await store.put(other)
        assert await asyncio.wait_for(anext(changes), 5) == other.id  # the touches were not
    finally:
        await changes.aclose()
    got = await store.get(touched.id)
    assert got is not None
    assert got.last_used_at == NOW + 100
    await store.put(touched)  # a put with an older last_used_at does not lower it
    assert (await store.get(touched.id)).last_used_at == NOW + 100
    assert await store.get("unknownid234") is None


async def test_records_survive_a_new_store_instance(open_store):
    first = open_store()
    service = KeyService(first)
    record, key = await service.create("durable", models=("gpt-4o",), rpm=10)
    await first.close()
    second = open_store()
    assert await second.get(record.id) == record
    assert await KeyService(second).authenticate(key) == record


# --- KeyService over each store -------------------------------------------------------------


async def test_create_and_authenticate(open_store):
    clock = Clock()
    service = KeyService(open_store(), clock=clock)
    record, key = await service.create("ci", models=("gpt-4o*",), rpm=60, tpm=1000, concurrency=2)
    assert key.startswith(f"sk-sy-{record.id}-")
    assert record.limits == KeyLimits(rpm=60, tpm=1000, concurrency=2)
    assert record.created_at == NOW
    assert await service.authenticate(key) == record
    assert await service.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert await service.authenticate(f"sk-sy-{new_key_id()}-{new_secret()}") is None
    assert await service.authenticate("sk-garbage") is None
    assert await service.get(record.id) == record
    assert [r.id for r in await service.list()] == [record.id]


async def test_revoke_fails_at_once_in_this_process(open_store):
    service = KeyService(open_store())
    record, key = await service.create("doomed")
    assert await service.authenticate(key) is not None  # now cached
    revoked = await service.revoke(record.id)
    assert revoked is not None
    assert revoked.state == "revoked"
    assert await service.authenticate(key) is None
    assert (await service.list())[0].state == "revoked"  # listed, not deleted
    assert await service.revoke(new_key_id()) is None


async def test_rotate_keeps_the_old_secret_for_the_grace_period(open_store):
    clock = Clock()
    service = KeyService(open_store(), clock=clock)
    record, old_key = await service.create("rotating")
    rotated = await service.rotate(record.id, grace_seconds=3600)
    assert rotated is not None
    new_record, new_key = rotated
    assert new_record.id == record.id
    assert new_key != old_key
    assert await service.authenticate(new_key) is not None
    assert await service.authenticate(old_key) is not None
    assert new_record.public(clock.now)["rotation_grace_until"] == NOW + 3600
    clock.now = NOW + 3599
    assert await service.authenticate(old_key) is not None
    clock.now = NOW + 3600
    assert await service.authenticate(old_key) is None
    assert await service.authenticate(new_key) is not None
    assert "rotation_grace_until" not in new_record.public(clock.now)


async def test_rotate_with_no_grace_fails_the_old_secret_at_once(open_store):
    service = KeyService(open_store(), clock=Clock())
    record, old_key = await service.create("rotating")
    assert await service.authenticate(old_key) is not None  # cached
    rotated = await service.rotate(record.id, grace_seconds=0)
    assert rotated is not None
    assert await service.authenticate(old_key) is None
    assert await service.authenticate(rotated[1]) is not None
    assert rotated[0].previous_hash is None
    await service.revoke(record.id)
    assert await service.rotate(record.id) is None  # a revoked key stays revoked
    assert await service.rotate(new_key_id()) is None


async def test_update(open_store):
    service = KeyService(open_store(), clock=Clock())
    record, key = await service.create("before", rpm=10, tpm=100)
    updated = await service.update(
        record.id, name="after", models=["gpt-4o"], rpm=20, expires_at=NOW + 5
    )
    assert updated is not None
    assert (updated.name, updated.models, updated.expires_at) == ("after", ("gpt-4o",), NOW + 5)
    assert updated.limits == KeyLimits(rpm=20, tpm=100, concurrency=None)
    assert await service.get(record.id) == updated
    assert await service.authenticate(key) == updated  # the cached "before" was evicted
    replaced = await service.update(record.id, limits={"concurrency": 3}, expires_at=None)
    assert replaced is not None
    assert replaced.limits == KeyLimits(concurrency=3)
    assert replaced.expires_at is None
    with pytest.raises(ValueError, match="secret_hash"):
        await service.update(record.id, secret_hash="0" * 64)
    with pytest.raises(ValueError, match="limits"):
        await service.update(record.id, rpm=-1)
    with pytest.raises(ValueError, match="expires_at"):
        await service.update(record.id, expires_at="tomorrow")
    single = await service.update(record.id, models="gpt-4o-mini")
    assert single is not None
    assert single.models == ("gpt-4o-mini",)
    assert await service.update(new_key_id(), name="x") is None


async def test_last_use_is_batched_into_touch(open_store):
    clock = Clock()
    service = KeyService(open_store(), clock=clock)
    record, key = await service.create("used")
    clock.now = NOW + 7
    await service.authenticate(key)
    assert await service.get(record.id) == record  # no write per request
    await service.flush_last_used()
    assert await service.get(record.id) == dataclasses.replace(record, last_used_at=NOW + 7)
    await service.flush_last_used()  # nothing pending: no-op


# --- across processes -----------------------------------------------------------------------


async def test_revoke_is_seen_by_another_process_within_a_second(open_store):
    admin, router = KeyService(open_store()), KeyService(open_store())
    without_invalidation = KeyService(open_store())
    async with invalidating(admin, router):
        record, key = await admin.create("shared")
        assert await router.authenticate(key) is not None  # cached in the other process
        assert await without_invalidation.authenticate(key) is not None
        await admin.revoke(record.id)
        elapsed = await wait_until(lambda: _rejected(router, key), PROPAGATION_BOUND)
        print(f"revoke seen by the other process after {elapsed * 1000:.0f} ms")
        assert elapsed < PROPAGATION_BOUND
        # Without its invalidation loop, a process would keep serving the cached record.
        assert await without_invalidation.authenticate(key) is not None


async def test_a_secret_rotated_elsewhere_works_at_once(open_store):
    """A verify miss on a cached record reads the store again (rate-limited per key)."""
    admin = KeyService(open_store())
    router = KeyService(open_store(), refresh_after=0.0)  # no invalidation loop at all
    slow = KeyService(open_store(), refresh_after=3600.0)
    record, old = await admin.create("rotated")
    assert await router.authenticate(old) is not None  # now cached with the old hash
    assert await slow.authenticate(old) is not None
    rotated = await admin.rotate(record.id, grace_seconds=60)
    assert rotated is not None
    new = rotated[1]
    assert await router.authenticate(new) is not None
    assert await router.authenticate(old) is not None  # still in its grace period
    # Within refresh_after of its last read, a miss is just a miss: no store read per guess.
    assert await slow.authenticate(new) is None


async def test_invalidation_ends_when_the_store_closes(open_store):
    store = open_store()
    service = KeyService(store)
    task = asyncio.create_task(service.run_invalidation(), name="invalidate")
    _, key = await service.create("k")
    assert await service.authenticate(key) is not None
    await store.close()
    await asyncio.wait_for(task, 2.0)  # ends by itself, no cancel needed
    assert task.result() is None


async def _rejected(service: KeyService, key: str) -> bool:
    return await service.authenticate(key) is None


async def test_invalidation_recovers_after_a_redis_restart(caplog):
    caplog.set_level(logging.WARNING, logger="router.auth.redis_store")
    with RedisServer() as server:
        admin_store, router_store = RedisStore.from_url(server.url), RedisStore.from_url(server.url)
        admin, router = KeyService(admin_store), KeyService(router_store)
        try:
            async with invalidating(admin, router):
                await _survive_restart(server, admin, router)
        finally:
            await admin_store.close()
            await router_store.close()
    # The listener backs off while Redis is down instead of spinning.
    lost = [r for r in caplog.records if r.name == "router.auth.redis_store"]
    assert len(lost) < 10


async def _survive_restart(server: RedisServer, admin: KeyService, router: KeyService) -> None:
    _, before = await admin.create("before")
    assert await router.authenticate(before) is not None  # cached
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(0.5)  # Redis stays down for a while (the scenario, not a wait)
    await asyncio.to_thread(server.start)  # no persistence: every key is gone
    # The resubscribed listener evicts everything, since messages may have been missed.
    await wait_until(lambda: _rejected(router, before), 15.0)
    record, after = await admin.create("after")
    assert await router.authenticate(after) is not None
    await admin.revoke(record.id)
    elapsed = await wait_until(lambda: _rejected(router, after), PROPAGATION_BOUND)
    assert elapsed < PROPAGATION_BOUND


@pytest.mark.parametrize("retries", [0, 40], ids=["client-without-retry", "client-with-retry"])
async def test_change_feed_evicts_all_after_a_redis_restart(retries, caplog):
    """Without retries the feed resubscribes itself; with them redis-py reconnects inside
    ``get_message`` and the feed learns of it from the reconnect count. Either way: ``"*"``."""
    caplog.set_level(logging.WARNING, logger="router.auth.redis_store")
    with RedisServer() as server:
        client = redis.asyncio.Redis.from_url(
            server.url, retry=Retry(ConstantBackoff(0.05), retries)
        )
        store = RedisStore(client)
        changes = store.changes()
        try:
            assert await asyncio.wait_for(anext(changes), 5) == EVICT_ALL
            await asyncio.to_thread(_restart, server)
            assert await asyncio.wait_for(anext(changes), 15) == EVICT_ALL
            record = stored_record()
            await store.put(record)
            assert await asyncio.wait_for(anext(changes), 5) == record.id
        finally:
            await changes.aclose()
            await store.close()
            await client.aclose()
    lost = [r for r in caplog.records if r.name == "router.auth.redis_store"]
    assert bool(lost) == (retries == 0)


# --- KeyService cache rules, over a scripted in-memory store ---------------------------------


class ScriptedStore:
    """An in-memory KeyStore whose reads can be held and whose writes can fail on cue."""

    def __init__(self) -> None:
        self.records: dict[str, KeyRecord] = {}
        self.gets = 0
        self.hold_reads: asyncio.Event | None = None
        self.touched: list[dict[str, float]] = []
        self.touch_failures = 0
        self.feed_failures = 0

    async def get(self, key_id: str) -> KeyRecord | None:
        self.gets += 1
        if self.hold_reads is not None:
            await self.hold_reads.wait()
        return self.records.get(key_id)

    async def list(self) -> list[KeyRecord]:
        return list(self.records.values())

    async def put(self, record: KeyRecord) -> None:
        self.records[record.id] = record

    async def merge(self, records: Iterable[KeyRecord]) -> int:
        raise NotImplementedError

    async def touch(self, last_used: Mapping[str, float]) -> None:
        if self.touch_failures:
            self.touch_failures -= 1
            raise ConnectionError("store down")
        self.touched.append(dict(last_used))

    async def changes(self) -> AsyncGenerator[str, None]:
        if self.feed_failures:
            self.feed_failures -= 1
            raise ConnectionError("feed down")
        yield EVICT_ALL
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass


async def test_a_read_racing_an_eviction_is_not_cached():
    store = ScriptedStore()
    service = KeyService(store)
    record, key = await service.create("k")
    store.hold_reads = asyncio.Event()
    reading = asyncio.create_task(service.authenticate(key), name="racing-read")
    await wait_until(_true_when(lambda: store.gets == 2), 1.0)  # the read is in flight
    service.evict(record.id)  # a change announced meanwhile: the read may be stale
    store.hold_reads.set()
    assert await reading == record
    await service.authenticate(key)
    assert store.gets == 3  # not served from the cache
    await service.authenticate(key)
    assert store.gets == 3  # now it is


async def test_the_cache_is_bounded():
    store = ScriptedStore()
    service = KeyService(store, max_cached=2)
    keys = [f"sk-sy-{new_key_id()}-{new_secret()}" for _ in range(3)]
    for key in keys:
        assert await service.authenticate(key) is None  # unknown ids are cached too
    gets = store.gets
    await service.authenticate(keys[2])
    assert store.gets == gets  # cached
    await service.authenticate(keys[0])
    assert store.gets == gets + 1  # the oldest entry made room


async def test_failed_flush_keeps_last_use_for_the_next_one():
    clock = Clock()
    store = ScriptedStore()
    service = KeyService(store, clock=clock)
    record, key = await service.create("k")
    await service.authenticate(key)
    store.touch_failures = 1
    with pytest.raises(ConnectionError):
        await service.flush_last_used()
    clock.now = NOW + 5
    await service.authenticate(key)
    await service.flush_last_used()
    assert store.touched == [{record.id: NOW + 5}]


async def test_invalidation_reopens_a_failed_feed(caplog):
    store = ScriptedStore()
    store.feed_failures = 2
    service = KeyService(store)
    async with invalidating(service):  # listening only after two failures and pauses
        assert store.feed_failures == 0
    assert not service.invalidation_live.is_set()
    assert caplog.text.count("key change feed failed") == 2


def _true_when(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


def _restart(server: RedisServer) -> None:
    """Stop and start again on the same port; the data is gone (no persistence)."""
    server.stop()
    server.start()
