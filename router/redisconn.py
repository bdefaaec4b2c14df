"""The router's Redis connections, and the check that Redis is one the router can use.

Two clients, so the limiter never depends on anyone else's use of a pool:

- the shared client (key store, key-change subscription, last-used times) has a pool of
  ``redis.max_connections`` that waits for a free connection rather than failing
  (``BlockingConnectionPool``); the wait is bounded by :data:`POOL_WAIT_SECONDS`, past which
  the operation fails as a store error;
- the limiter's own client has exactly as many connections as its pipeliner ever uses at once
  (:data:`router.limits.pipeline.MAX_IN_FLIGHT`), so a flood of key lookups (a burst of
  unknown keys) cannot make an admission queue for a connection and fail open.

A Redis Cluster node is refused at start: the router speaks to a single Redis (its limiter
script and its key store's transactions assume one node), and until a test runs a real
cluster, running against one would leave limits unenforced.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from router.config import RedisConfig
from router.limits.failures import FAILURES
from router.limits.pipeline import MAX_IN_FLIGHT
from router.limits.types import failure_reason
from router.startup import StartupError

logger = logging.getLogger("switchyard")

# How long an operation of the shared client waits for a pooled connection. redis-py's
# BlockingConnectionPool waits 20 s by default and HikariCP 30 s, for batch work; a request
# waiting on a key lookup should fail well before a client's own timeout instead.
POOL_WAIT_SECONDS = 2.0
# Socket timeouts: the limiter bounds its calls more tightly itself (redis.timeout_ms); this
# floor keeps a key lookup on a loaded machine from failing on a single slow answer.
MIN_SOCKET_TIMEOUT = 0.5
CHECK_TIMEOUT = 5.0  # the check at start: generous, a router starting beside a busy Redis


def shared_client(config: RedisConfig) -> redis.asyncio.Redis:
    """The client for the key store: a pool of ``max_connections`` that waits when all are
    busy, up to :data:`POOL_WAIT_SECONDS`."""
    return _client(config, config.max_connections)


def limiter_client(config: RedisConfig) -> redis.asyncio.Redis:
    """The limiter's own client: as many connections as its pipeliner keeps in flight."""
    return _client(config, MAX_IN_FLIGHT)


def _client(config: RedisConfig, max_connections: int) -> redis.asyncio.Redis:
    timeout = max(config.timeout_ms / 1000, MIN_SOCKET_TIMEOUT)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        config.url,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # A pooled connection from before a Redis restart fails on its first use ("Connection
        # closed by server"): once, at once, on a fresh connection, so a Redis that is back
        # answers the very next call (a burst right after the restart got 503s without it).
        # Safe to repeat: key reads, versioned key writes (merge.lua) and lease ids are
        # idempotent; a bucket charge repeated after a reply lost mid-flight errs toward refusing.
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
    return redis.asyncio.Redis.from_pool(pool)


def check_redis(config: RedisConfig | None) -> None:
    """:func:`refuse_cluster` outside an event loop (the supervisor, before its workers)."""
    if config is None:
        return

    async def check() -> None:
        client = shared_client(config)
        try:
            await refuse_cluster(client)
        finally:
            await client.aclose()

    asyncio.run(check())


async def refuse_cluster(client: redis.asyncio.Redis) -> None:
    """Raise :class:`StartupError` if ``client`` talks to a Redis Cluster node.

    A Redis that cannot be reached now is not refused: the router starts (as it always has,
    with the limiter's ``failure`` policy deciding meanwhile), and says so in the log.
    """
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            info = await client.info("cluster")
    except FAILURES as exc:
        fields = {"reason": failure_reason(exc), "error": type(exc).__name__}
        logger.warning("redis unreachable at start; mode not checked", extra={"fields": fields})
        return
    if info.get("cluster_enabled"):
        raise StartupError(
            "redis.url points at a Redis Cluster node (cluster_enabled:1); Switchyard runs on "
            "a single Redis only: point redis.url at a standalone Redis"
        )
