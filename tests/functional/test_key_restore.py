"""RestoringStore against a real private Redis: the rules of a restore, one router at a time.

Each ``Router`` here is what one router process holds: its own client, Redis store, snapshot
and key service. FLUSHALL on the private server stands in for a Redis that restarted empty (the
reliability suite restarts a real one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from router.auth.records import KeyRecord
from router.auth.redis_store import RedisStore
from router.auth.restore import RestoringStore, warn_without_persistence
from router.auth.service import KeyService
from router.auth.snapshot import KeySnapshot
from tests.redis_server import RedisServer

NO_PERSISTENCE = "Redis has no persistence"


@dataclasses.dataclass
class Router:
    store: RestoringStore
    service: KeyService

    @property
    def snapshot(self) -> KeySnapshot:
        return self.store.snapshot


@pytest.fixture
async def redis_client(private_redis: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(private_redis.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def routers(private_redis: RedisServer) -> AsyncIterator[list[Router]]:
    """Three routers on one Redis, none with a snapshot yet."""
    made = []
    for _ in range(3):
        store = RestoringStore(RedisStore.from_url(private_redis.url), KeySnapshot())
        made.append(Router(store, KeyService(store)))
    yield made
    for router in made:
        await router.store.close()


async def created(router: Router, name: str) -> tuple[KeyRecord, str]:
    return await router.service.create(name)


async def stored(router: Router) -> dict[str, KeyRecord]:
    return {record.id: record for record in await router.store.store.list()}


async def test_of_routers_that_find_redis_reset_exactly_one_restores(routers, redis_client):
    a, _b, c = routers
    keys = [await created(a, name) for name in ("one", "two", "three")]
    await a.service.revoke(keys[2][0].id)
    for router in routers:
        await router.store.check()  # every router knows every record and the epoch
    before = await stored(a)
    assert len(c.snapshot) == 3

    await redis_client.flushall()
    await asyncio.gather(*(router.store.check() for router in routers))
    await asyncio.gather(*(router.store.check() for router in routers))  # the next tick

    assert sum(router.store.restores for router in routers) == 1
    assert await stored(a) == before
    epochs = {router.snapshot.epoch for router in routers}
    assert epochs == {await a.store.store.epoch()}
    assert epochs != {None}


async def test_a_lookup_of_a_known_key_restores_at_once(routers, redis_client):
    a = routers[0]
    record, key = await created(a, "k")
    await redis_client.flushall()
    a.service.evict("*")  # what the feed's resubscription does after a restart
    assert (await a.service.authenticate(key)).id == record.id  # no timer, no wait
    assert a.store.restores == 1


async def test_a_restore_claimed_by_a_router_that_died_is_taken_over(routers, redis_client):
    a = routers[0]
    (looked_up, key), (other, _) = await created(a, "looked-up"), await created(a, "other")
    await a.store.check()
    await redis_client.flushall()
    await redis_client.set("sy:keys-epoch", "restoring:a-router-that-died", px=300)
    a.service.evict("*")
    # Another router is restoring: a lookup does not wait for it, it writes its record back.
    assert (await a.service.authenticate(key)).id == looked_up.id
    assert [record.id for record in await a.store.store.list()] == [looked_up.id]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while a.store.restores == 0:  # the claim expires and this router takes over
        assert loop.time() < deadline, "the dead router's claim never expired"
        await asyncio.sleep(0.05)
        await a.store.check()
    assert {record.id for record in await a.store.store.list()} == {looked_up.id, other.id}


async def test_a_stale_restore_is_corrected_and_nothing_revoked_comes_back(routers, redis_client):
    a, b, _ = routers
    rotated, _ = await created(a, "rotated")
    revoked, _ = await created(a, "revoked")
    await b.store.check()  # b knows both keys, then misses what follows (no feed runs here)
    await a.service.rotate(rotated.id, grace_seconds=0)
    await a.service.revoke(revoked.id)
    stale = b.snapshot.records[rotated.id]
    assert stale.version == 1
    assert b.snapshot.records[revoked.id].state == "active"

    await redis_client.flushall()
    await b.store.check()  # the stale router restores first
    await a.store.check()  # the other sees a new epoch and writes back what is newer

    after = await stored(a)
    assert after[rotated.id].secret_hash == a.snapshot.records[rotated.id].secret_hash
    assert after[rotated.id].previous_hash is None  # the old secret did not outlive its grace
    assert after[revoked.id].state == "revoked"
    assert (a.store.restores, b.store.restores) == (0, 1)
    # And a later restore from the stale copy still cannot roll anything back.
    assert await b.store.store.merge([stale]) == 0


async def test_a_record_lost_while_the_marker_stayed_is_written_back(routers, redis_client):
    """Redis evicted it (allkeys-lru) or someone deleted it: no operation deletes a key."""
    a = routers[0]
    record, key = await created(a, "k")
    await a.store.check()  # the marker is set
    await redis_client.delete(a.store.store.record_key(record.id))
    a.service.evict("*")
    assert (await a.service.authenticate(key)).id == record.id
    assert a.store.restores == 0  # not a reset: the marker is still there
    assert [r.id for r in await a.store.store.list()] == [record.id]


async def test_a_router_that_knows_nothing_claims_nothing(routers, redis_client):
    a, b, _ = routers
    await a.store.check()
    assert await a.store.store.epoch() is None  # a new deployment: nothing to restore
    await created(b, "first")
    await b.store.check()
    marker = await b.store.store.epoch()
    assert marker is not None
    assert b.store.restores == 0
    await a.store.check()
    assert a.snapshot.epoch == marker
    assert len(a.snapshot) == 1


async def test_without_persistence_redis_gets_a_warning(private_redis, redis_client, caplog):
    caplog.set_level(logging.WARNING, logger="router.auth.restore")
    store = RedisStore(redis_client)
    await warn_without_persistence(store)  # the test server runs with neither RDB nor AOF
    assert [NO_PERSISTENCE in r.getMessage() for r in caplog.records] == [True]
    caplog.clear()
    # An RDB save rule is persistence too (one that writes no file within the test: appendonly
    # yes would write one into the working directory at once).
    await redis_client.config_set("save", "3600 1000000")
    try:
        await warn_without_persistence(store)
        assert not caplog.records
        await redis_client.config_set("maxmemory-policy", "allkeys-lru")
        await warn_without_persistence(store)
    finally:
        await redis_client.config_set("save", "")
        await redis_client.config_set("maxmemory-policy", "noeviction")
    assert ["may evict" in r.getMessage() for r in caplog.records] == [True]


async def test_a_redis_that_refuses_config_is_left_alone(private_redis, redis_client, caplog):
    """Managed Redis often forbids CONFIG: no warning, no error, nothing raised."""
    caplog.set_level(logging.DEBUG, logger="router.auth.restore")
    await redis_client.acl_setuser(
        "app", enabled=True, nopass=True, keys=["*"], channels=["*"], commands=["+@all", "-config"]
    )
    limited = redis.asyncio.Redis.from_url(private_redis.url, username="app")
    try:
        await warn_without_persistence(RedisStore(limited))
    finally:
        await limited.aclose()
        await redis_client.acl_deluser("app")
    assert not caplog.records
