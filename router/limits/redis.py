"""Limits shared by every router process and host: one atomic Lua call per admission.

Each API key has three Redis keys, ``sy:{KEY}:rpm`` and ``sy:{KEY}:tpm`` (hashes of level and
stamp, expiring once the bucket would be full again) and ``sy:{KEY}:conc`` (a sorted set of
lease id -> expiry). The braces are a hash tag: the three would share one slot on a Redis
Cluster, but the router runs on a single Redis only (it refuses a cluster at start) until a
test runs a real cluster. Time is the Redis server's (``TIME``) so routers on hosts with skewed
clocks share one clock; ``clock`` overrides it, for tests.

One round trip per request: settle and release are deferred. The next admission of the same
key carries them into its script call (so a client's next request sees its own slot freed),
and a flusher sends whatever is left every ``flush_interval`` in one pipelined round trip (so
another router sees it within that interval). Deferred work that fails is kept and retried.

Every call goes through a :class:`~router.limits.pipeline.Pipeliner`: the calls of one loop
tick share one round trip, so a burst of any size needs a few connections, never one each.
``timeout`` bounds Redis's answer, not the wait in that queue. When Redis fails or is slow, the
limiter fails open (admits, marked ``degraded``) or closed (raises
:class:`LimiterUnavailable`), and reports the error to ``on_error`` either way (see
:func:`failure_reason`); settle and release never raise. When Redis comes back, redis-py's pool
reconnects and the pipeliner reloads a script the new server lacks (``NOSCRIPT``), so nothing
stays broken.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from importlib import resources
from typing import NoReturn

import redis.asyncio

from router.limits.failures import FAILURES
from router.limits.headers import rate_limit_headers
from router.limits.pipeline import Pipeliner
from router.limits.types import (
    Account,
    AccountLevel,
    Admission,
    Kind,
    LimiterUnavailable,
    Limits,
    degraded,
    failure_reason,
)

_KINDS: dict[str, Kind | None] = {
    "": None,
    "requests": "requests",
    "tokens": "tokens",
    "concurrency": "concurrency",
}


def _script(name: str) -> str:
    return resources.files("router.limits").joinpath(name).read_text(encoding="utf-8")


class RedisLimiter:
    """Token buckets and concurrency leases in Redis, exact across any number of routers.

    The client belongs to the caller, who closes it; :meth:`close` leaves it open.
    Key ids must not contain ``}`` (it would end the hash tag).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "sy:",
        timeout: float = 0.05,
        fail_open: bool = True,
        lease_ttl: float = 900.0,
        on_error: Callable[[BaseException, str], None] | None = None,
        clock: Callable[[], float] | None = None,
        flush_interval: float = 0.02,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout
        self._fail_open = fail_open
        self._lease_ttl = lease_ttl
        self._on_error = on_error
        self._clock = clock
        self._admit = client.register_script(_script("admit.lua"))
        self._settle = client.register_script(_script("settle.lua"))
        self._renew = client.register_script(_script("renew.lua"))
        self._pipeliner = Pipeliner(client, timeout=timeout)
        self.errors = 0
        self._pending: dict[str, _Deferred] = {}
        self._flush_interval = flush_interval
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        mode = "fail-open" if self._fail_open else "fail-closed"
        timeout_ms = round(self._timeout * 1000)
        return f"<RedisLimiter {self._prefix!r} {mode} {timeout_ms}ms [{self.errors} errors]>"

    def keys(self, key_id: str) -> list[str]:
        """The rpm bucket, tpm bucket and lease set of one API key, in the script's order."""
        base = f"{self._prefix}{{{key_id}}}:"
        return [base + "rpm", base + "tpm", base + "conc"]

    async def admit(
        self,
        key_id: str,
        limits: Limits,
        tokens: int,
        lease: str,
        accounts: Sequence[Account] = (),
    ) -> Admission:
        if limits.empty and not accounts:
            return Admission(allowed=True, kind=None, retry_after=None, headers={})
        deferred = self._pending.pop(key_id, None)
        keys = self.keys(key_id)
        args: list[int | float | str] = [
            self._now(),
            _arg(limits.rpm),
            _arg(limits.tpm),
            tokens,
            _arg(limits.concurrency),
            lease,
            self._lease_ttl,
            deferred.delta if deferred is not None else "",
            len(accounts),
        ]
        for account in accounts:
            keys += self.keys(account.id)[:2]
            args += (_arg(account.limits.rpm), _arg(account.limits.tpm))
        if deferred is not None:
            args += deferred.leases
        call = self._pipeliner.submit(self._admit, keys, args)
        try:
            reply = await asyncio.shield(call)
        except asyncio.CancelledError:
            self._abandoned(call, key_id, limits, lease, deferred)
            raise
        except FAILURES as exc:
            if deferred is not None:
                self._defer(key_id, deferred.limits).merge(deferred)
            self._report(exc, "admit")
            if not self._fail_open:
                _unavailable(exc)
            return degraded(failure_reason(exc))
        return _admission(limits, reply)

    def _abandoned(
        self,
        call: asyncio.Future[object],
        key_id: str,
        limits: Limits,
        lease: str,
        carried: _Deferred | None,
    ) -> None:
        """The request went away during its admission (a client that disconnected). Its call
        still goes out, since it carries this key's deferred work (kept again if the call
        fails); a lease it may take is given back once it is answered (a release sent before
        the call could land first)."""

        def give_back(answered: asyncio.Future[object]) -> None:
            if self._closed:
                return
            failed = answered.cancelled() or answered.exception() is not None
            if failed and carried is not None:
                self._defer(key_id, carried.limits).merge(carried)
            if limits.concurrency is not None:
                self._defer(key_id, limits).leases.append(lease)

        call.add_done_callback(give_back)

    async def settle(self, key_id: str, limits: Limits, delta_tokens: int) -> None:
        if limits.tpm is not None and delta_tokens != 0:
            self._defer(key_id, limits).delta += delta_tokens

    async def release(self, key_id: str, limits: Limits, lease: str) -> None:
        if limits.concurrency is not None:
            self._defer(key_id, limits).leases.append(lease)

    @property
    def lease_ttl(self) -> float:
        return self._lease_ttl

    async def renew(self, key_id: str, limits: Limits, lease: str) -> None:
        if limits.concurrency is None:
            return
        args = [self._now(), self._lease_ttl, lease]
        try:
            await self._pipeliner.script(self._renew, [self.keys(key_id)[2]], args)
        except FAILURES as exc:  # the next renewal, well before expiry, tries again
            self._report(exc, "renew")

    def _defer(self, key_id: str, limits: Limits) -> _Deferred:
        deferred = self._pending.get(key_id)
        if deferred is None:
            deferred = self._pending[key_id] = _Deferred(limits)
        deferred.limits = limits
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_forever(), name="switchyard-limits-flush"
            )
        self._wake.set()
        return deferred

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._flush_interval)  # gather a batch
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Send every deferred settle and release now (they share round trips with admissions).

        A call that fails is kept for the next try; one that went through is not, so nothing
        is applied twice."""
        batch, self._pending = self._pending, {}
        sent = [
            (key_id, part, call)
            for key_id, deferred in batch.items()
            for part, call in self._flush_calls(key_id, deferred)
        ]
        results = await asyncio.gather(*(call for *_, call in sent), return_exceptions=True)
        errors = [result for result in results if isinstance(result, BaseException)]
        for (key_id, part, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException) and not self._closed:
                self._defer(key_id, part.limits).merge(part)
        if errors:
            self._report(errors[0], "flush")

    def _flush_calls(
        self, key_id: str, deferred: _Deferred
    ) -> Iterator[tuple[_Deferred, Awaitable[object]]]:
        _, tpm_key, leases_key = self.keys(key_id)
        if deferred.delta and deferred.limits.tpm is not None:
            args = [self._now(), deferred.limits.tpm, deferred.delta]
            settled = _Deferred(deferred.limits, delta=deferred.delta)
            yield settled, self._pipeliner.script(self._settle, [tpm_key], args)
        if deferred.leases:
            released = _Deferred(deferred.limits, leases=deferred.leases)
            yield released, self._pipeliner.command("ZREM", leases_key, *deferred.leases)

    async def close(self) -> None:
        """Send what is deferred and stop the flusher; the client is the caller's."""
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()
        await self._pipeliner.close()

    def _now(self) -> float | str:
        return "" if self._clock is None else self._clock()

    def _report(self, exc: BaseException, operation: str) -> None:
        self.errors += 1
        if self._on_error is not None:
            self._on_error(exc, operation)


class _Deferred:
    """Settles and releases of one key, waiting to ride along with a round trip."""

    __slots__ = ("delta", "leases", "limits")

    def __init__(self, limits: Limits, delta: int = 0, leases: list[str] | None = None) -> None:
        self.limits = limits
        self.delta = delta
        self.leases: list[str] = leases or []

    def merge(self, other: _Deferred) -> None:
        self.delta += other.delta
        self.leases += other.leases


def _arg(limit: int | None) -> int | str:
    return "" if limit is None else limit


def _unavailable(exc: BaseException) -> NoReturn:
    message = f"rate limit store unavailable: {type(exc).__name__}"
    raise LimiterUnavailable(message, failure_reason(exc)) from exc


def _admission(limits: Limits, reply: Sequence[bytes | str]) -> Admission:
    texts = [_text(value) for value in reply]
    allowed, kind, retry, rpm_level, rpm_reset, tpm_level, tpm_reset, chosen, full = texts[:9]
    headers = rate_limit_headers(
        limits, _float(rpm_level), _float(rpm_reset), _float(tpm_level), _float(tpm_reset)
    )
    rows = texts[9:]
    levels = tuple(
        AccountLevel(_pair(rows[i], rows[i + 1]), _pair(rows[i + 2], rows[i + 3]))
        for i in range(0, len(rows), 4)
    )
    return Admission(
        allowed=allowed == "1",
        kind=_KINDS[kind],
        retry_after=float(retry) if retry else None,
        headers=headers,
        account=int(chosen) - 1 if chosen else None,
        accounts_full=full == "1",
        accounts=levels,
    )


def _pair(level: str, reset: str) -> tuple[float, float] | None:
    return (float(level), float(reset)) if level else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _float(text: str) -> float:
    return float(text) if text else 0.0
