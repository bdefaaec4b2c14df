"""The app's long-lived resources, one ``cleanup_ctx`` generator each (setup beside teardown).

Redis (when configured), the key store with its cache-invalidation and last-used tasks (and,
with Redis, the snapshot that restores the keys after Redis comes back empty), and the rate
limiter. Tasks are owned: named, referenced, cancelled on cleanup (an event loop keeps only
weak references to tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from router.appkeys import AUTH, CONFIG, KEYRING, LIMITER, METRICS, REDIS
from router.auth.keystore import KeyStore
from router.auth.open_store import open_store
from router.auth.principals import Authenticator
from router.auth.service import KeyService
from router.auth.snapshot import load
from router.limits import LocalLimiter
from router.limits.types import failure_reason
from router.metrics import Recorder

if TYPE_CHECKING:
    from router.auth.restore import RestoringStore

# Everything Redis is imported inside the branches that have a Redis configured: an idle
# router without one does not carry the redis package (~7 MiB; tests/unit/test_layers.py).

logger = logging.getLogger("switchyard")
LAST_USED_FLUSH_SECONDS = 5.0
LOG_EVERY_SECONDS = 10.0


async def redis_client(app: web.Application) -> AsyncIterator[None]:
    """The shared client (key store); a Redis Cluster is refused here, before anything uses it."""
    config = app[CONFIG].redis
    if config is None:
        yield
        return
    from router.redisconn import refuse_cluster, shared_client  # noqa: PLC0415 (above)

    client = shared_client(config)
    try:
        await refuse_cluster(client)
    except BaseException:
        await client.aclose()
        raise
    app[REDIS] = client
    yield
    await client.aclose()


async def keys(app: web.Application) -> AsyncIterator[None]:
    store = open_store(app[CONFIG], app.get(REDIS))
    restoring = await _restoring(app, store) if app[CONFIG].redis is not None else None
    service = KeyService(restoring or store)
    app[AUTH] = Authenticator(app[KEYRING], service)
    tasks = [
        _owned(service.run_invalidation(), "switchyard-key-invalidation"),
        _owned(_flush_every(service), "switchyard-last-used"),
    ]
    if restoring is not None:
        tasks.append(_owned(restoring.run(), "switchyard-key-snapshot"))
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with contextlib.suppress(Exception):
        await service.flush_last_used()
    if restoring is not None:
        await restoring.save()
    await store.close()


async def _restoring(app: web.Application, store: KeyStore) -> RestoringStore:
    """The Redis store behind a snapshot of every key, loaded from its file (see
    :mod:`router.auth.restore`): keys outlive a Redis that restarts empty."""
    from router.auth.redis_store import RedisStore  # noqa: PLC0415 (above)
    from router.auth.restore import RestoringStore  # noqa: PLC0415

    assert isinstance(store, RedisStore)
    path = app[CONFIG].store.snapshot_file
    snapshot = await asyncio.to_thread(load, path, store.prefix)
    on_restore = app[METRICS].key_store_restored
    return RestoringStore(store, snapshot, path=path, on_restore=on_restore)


async def limiter(app: web.Application) -> AsyncIterator[None]:
    """The in-process limiter, or the Redis one on a client of its own (router.redisconn)."""
    config = app[CONFIG].redis
    client = None
    if config is None:
        app[LIMITER] = LocalLimiter()
    else:
        from router.limits.redis import RedisLimiter  # noqa: PLC0415 (above)
        from router.redisconn import limiter_client  # noqa: PLC0415

        client = limiter_client(config)
        app[LIMITER] = RedisLimiter(
            client,
            prefix=config.prefix,
            timeout=config.timeout_ms / 1000,
            fail_open=config.failure == "fail_open",
            on_error=_LimiterErrors(config.failure, app[METRICS]),
        )
    yield
    await app[LIMITER].close()
    if client is not None:
        await client.aclose()


class _LimiterErrors:
    """Count each rate-limit store failure; log at most once per interval, with how many
    happened since (no log storm)."""

    def __init__(self, policy: str, metrics: Recorder) -> None:
        self._policy = policy
        self._metrics = metrics
        self._last = 0.0
        self._count = 0

    def __call__(self, exc: BaseException, operation: str) -> None:
        reason = failure_reason(exc)
        self._metrics.redis_error(operation, reason)
        self._count += 1
        now = time.monotonic()
        if now - self._last >= LOG_EVERY_SECONDS:
            fields = {
                "policy": self._policy,
                "errors": self._count,
                "operation": operation,
                "reason": reason,
                "error": type(exc).__name__,
            }
            logger.warning("rate-limit store unavailable", extra={"fields": fields})
            self._last, self._count = now, 0


async def _flush_every(service: KeyService) -> None:
    while True:
        await asyncio.sleep(LAST_USED_FLUSH_SECONDS)
        try:
            await service.flush_last_used()
        except Exception as exc:  # the store is down: keep the times, try again next round
            # No traceback: an expected outage (a restarting Redis), not a bug.
            fields = {"error": type(exc).__name__}
            logger.warning("could not record key last-use times", extra={"fields": fields})


def _owned(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro, name=name)
