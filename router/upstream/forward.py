"""Send a request upstream: pick, try, retry on another backend, then fall back.

Everything here happens before the first byte reaches the client, which is what makes retrying
safe. A non-streamed answer is read whole inside the attempt, so even a body that breaks halfway
is retried; a streamed answer is handed to the relay as soon as its headers arrive, and from then
on nothing is retried.

Retries are bounded three ways: attempts per pool, untried backends in the pool, and a
:class:`~balancers.RetryBudget` shared by the whole process (Finagle's answer to retry storms:
during an outage retries add at most ``budget_percent`` to the load, not a multiple of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TypeVar

import orjson

from balancers import BackendState, RetryBudget
from router.config import RetryConfig
from router.context import RequestContext
from router.endpoints import Endpoint
from router.errors import RateLimited, RouterError, ServiceUnavailable
from router.metrics import METRICS_OFF, Recorder
from router.upstream import refusal, report
from router.upstream.backend import Backend
from router.upstream.errors import (
    TRANSPORT_ERRORS,
    PoolExhausted,
    Retryable,
    from_status,
    parse_retry_after,
    retryable_status,
)
from router.upstream.gate import Gate
from router.upstream.http import UpstreamResponse
from router.upstream.reply import Reply
from router.upstream.route import Route

T = TypeVar("T")
Attempt = Callable[[Backend, Route], Awaitable[T]]
"""One try on one backend of a route: its result, or raise Retryable (another backend may do
better) or a RouterError (final)."""


class Forwarder:
    """Owns the retry policy and budget of one router process."""

    def __init__(self, config: RetryConfig, metrics: Recorder = METRICS_OFF) -> None:
        self._attempts = config.attempts
        self._backoff_initial = config.backoff_initial
        self._backoff_max = config.backoff_max
        self.budget = RetryBudget(
            percent=config.budget_percent,
            window=config.budget_window,
            min_per_second=config.budget_min_per_second,
            clock=time.monotonic,
        )
        self._metrics = metrics

    async def forward(
        self, chain: tuple[Route, ...], attempt: Attempt[T], ctx: RequestContext
    ) -> T:
        """The first good result of ``attempt`` along ``chain`` (an HTTP reply, a dialed
        WebSocket), or the last failure as a RouterError.

        Most requests succeed at once, so each pool's first try is made here; only a failed
        try enters the retry loop.
        """
        self.budget.deposit()
        last: Retryable | None = None
        unsent = False  # the previous pool had no backend to try: nothing went upstream
        for index, route in enumerate(chain):
            if index and not self._fall_back(chain[index - 1].model, route.model, last, unsent):
                break
            tried: set[BackendState] = set()
            try:
                if route.gate is None or route.gate.free():
                    return await _try(route, tried, attempt, ctx)
                return await _queued(route, route.gate, tried, attempt, ctx)
            except PoolExhausted:
                unsent = True
                continue
            except Retryable as failure:
                unsent = False
                last = failure
            try:
                return await self._retry(route, tried, last, attempt, ctx)
            except Retryable as failure:
                last = failure
        raise _client_error(last, chain, ctx.tokens)

    async def _retry(
        self,
        route: Route,
        tried: set[BackendState],
        failure: Retryable,
        attempt: Attempt[T],
        ctx: RequestContext,
    ) -> T:
        """Retries on the pool's other backends: the first at once (failover, as Envoy does
        across hosts), later ones after a jittered backoff; raises the last failure.

        A plain loop, not tenacity: the stop rule spends from the shared retry budget and the
        last failure must outlive a pool left with no backend to try, which tenacity's
        callbacks could only hold in state kept beside them; the loop also builds nothing."""
        made = 1  # the pool's first try, made by forward()
        while self._may_retry(made, route, tried):
            if made > 1:
                await asyncio.sleep(self.backoff(made - 1))
            made += 1
            self._metrics.retried(route.model, failure.reason)
            try:
                return await _try(route, tried, attempt, ctx)
            except PoolExhausted:  # every backend left is busy probing: the last failure stands
                break
            except Retryable as exc:
                failure = exc
        raise failure

    def _may_retry(self, made: int, route: Route, tried: set[BackendState]) -> bool:
        """Another try after ``made`` attempts? Not past the attempts per pool, not without an
        untried backend, and only with a withdrawal from the retry budget."""
        if made >= self._attempts or len(tried) >= len(route.pool.backends):
            return False
        if self.budget.try_withdraw():
            return True
        self._budget_exhausted(route.model)
        return False

    def backoff(self, retry: int) -> float:
        """The pause before the ``retry``-th delayed retry: "full jitter" over an exponential
        cap (AWS's backoff-and-jitter analysis; what tenacity's wait_random_exponential draws)."""
        cap = min(self._backoff_max, self._backoff_initial * 2 ** (retry - 1))
        return random.uniform(0, cap)

    def _fall_back(self, model: str, fallback: str, last: Retryable | None, unsent: bool) -> bool:
        """May the request go on to ``fallback``? Spends from the retry budget, unless nothing
        was sent upstream for ``model``: the budget caps re-sends (Finagle counts retries), and
        a pool whose backends are all cooling down sent nothing. Otherwise a long outage of a
        model would drain the budget and refuse the fallback that still works."""
        if not unsent and not self.budget.try_withdraw():
            self._budget_exhausted(model)
            return False
        reason = "no_backend" if unsent or last is None else last.reason
        self._metrics.fell_back(model, fallback, reason)
        return True

    def _budget_exhausted(self, model: str) -> None:
        self._metrics.budget_exhausted(model)


def _try(
    route: Route, tried: set[BackendState], attempt: Attempt[T], ctx: RequestContext
) -> Awaitable[T]:
    """Pick an untried backend and start the attempt (no coroutine frame of its own)."""
    backend = _pinned(route, tried, ctx) if ctx.pinned is not None else None
    if backend is None:
        pool = route.pool
        key = ctx.affinity
        if key is None or pool.ring is None:
            state = pool.pick(tried, tokens=ctx.tokens)
        else:  # prompt-cache affinity: was it the key's own backend? (the hit-rate metric)
            state = pool.pick(tried, tokens=ctx.tokens, affinity=key)
            ctx.affinity_hit = pool.ring.last_hit
        if state is None:
            raise PoolExhausted
        tried.add(state)
        backend = route.backends[state.name]
    ctx.attempt(route.model, backend.name)
    return attempt(backend, route)


def _pinned(route: Route, tried: set[BackendState], ctx: RequestContext) -> Backend | None:
    """The backend the admission chose (and charged) for the first try, if of this route."""
    pinned, ctx.pinned = ctx.pinned, None
    if pinned is None or pinned[0] != route.model:
        return None
    backend = route.backends[pinned[1]]
    tried.add(backend.state)
    return backend


async def _queued(
    route: Route, gate: Gate, tried: set[BackendState], attempt: Attempt[T], ctx: RequestContext
) -> T:
    """The pool's first try, after a wait in its queue for the slot the gate hands over (or
    at once, as without a queue, when the pool is down rather than busy)."""
    state = await gate.wait(ctx.key_id or "", ctx.priority)
    if state is None:
        return await _try(route, tried, attempt, ctx)
    state.end()  # the reservation becomes the attempt's own slot: begin() runs before any await
    tried.add(state)
    ctx.attempt(route.model, state.name)
    return await attempt(route.backends[state.name], route)


class HttpAttempt:
    """An HTTP request to the backend: the client's body (renamed model if need be) and
    headers; its reply once the headers arrive (a non-streamed body read whole)."""

    __slots__ = ("body", "headers", "payload")

    def __init__(self, payload: dict[str, object], body: bytes, headers: dict[str, str]) -> None:
        self.payload = payload
        self.body = body
        self.headers = headers

    def __call__(self, backend: Backend, route: Route) -> Coroutine[None, None, Reply]:
        # The client's bytes as sent, unless the backend knows the model by another name.
        body = _renamed(backend, self.payload) if backend.renames else self.body
        return _attempt(backend, route.endpoint, body, self.headers)


class PathAttempt:
    """A request to a URL of the backend other than its endpoint's (a stored response, a
    conversation): ``url_of`` makes it from the backend; same health, timeouts and relay."""

    __slots__ = ("body", "headers", "method", "url_of")

    def __init__(
        self,
        method: str,
        url_of: Callable[[Backend], str],
        body: bytes,
        headers: dict[str, str],
    ) -> None:
        self.method = method
        self.url_of = url_of
        self.body = body
        self.headers = headers

    def __call__(self, backend: Backend, route: Route) -> Coroutine[None, None, Reply]:
        send = backend.send(self.method, self.url_of(backend), self.body, self.headers)
        return _attempt(backend, route.endpoint, self.body, self.headers, sent=send)


def _renamed(backend: Backend, payload: dict[str, object]) -> bytes:
    """The request with the model named as ``backend`` knows it."""
    return orjson.dumps({**payload, "model": backend.model})


async def _attempt(
    backend: Backend,
    endpoint: Endpoint,
    body: bytes,
    headers: dict[str, str],
    *,
    sent: Awaitable[UpstreamResponse] | None = None,
) -> Reply:
    """One try on one backend. The client enforces the timeouts: connect, first byte, the
    longest silence within a body read whole (first_byte), and total."""
    backend.begin()
    started = time.monotonic()
    response: UpstreamResponse | None = None
    try:
        response = await (sent or backend.post(endpoint, body, headers))
        first_byte = time.monotonic()
        backend.read_quota(response.headers, first_byte, response.status == 429)
        if not retryable_status(response.status):  # a usable answer: the backend is healthy
            report.answered(backend.state, first_byte, first_byte - started)
            reply = Reply(backend, response, started, first_byte)
            if not reply.streaming:  # read it whole while a retry is still possible
                reply.body = await response.read()
                reply.done = time.monotonic()
            return reply
        refused = await _refused(backend, response, first_byte)
    except TRANSPORT_ERRORS as exc:
        _release(backend, response)
        raise report.failed(backend.state, exc, backend.name) from exc
    except BaseException:  # cancelled: the client went away, there is no outcome to report
        _release(backend, response)
        report.abandoned(backend.state)
        raise
    _release(backend, response)
    raise refused


async def _refused(backend: Backend, response: UpstreamResponse, now: float) -> Retryable:
    """Record a "not now" status on the backend's health and say what the client would see."""
    error = from_status(response.status, backend.name, parse_retry_after(response.headers))
    report.refused(backend.state, error, response.status, now)
    # Read the small error body so the keep-alive connection can be reused, then drop it:
    # an upstream error body is never shown to the client (it can quote our upstream key).
    body = b""
    with contextlib.suppress(*TRANSPORT_ERRORS):
        body = await response.read()
    response.close()
    if isinstance(error.error, RateLimited):
        error.error.kind = refusal.kind_of(response.headers, body)
        backend.metrics.rate_limited()
    return error


def _release(backend: Backend, response: UpstreamResponse | None) -> None:
    if response is not None:
        response.close()
    backend.end()


def _client_error(last: Retryable | None, chain: tuple[Route, ...], tokens: int) -> RouterError:
    limited = refusal.rate_limited(last, chain, tokens)
    if limited is not None:  # every candidate refused with 429 or is out of quota
        return limited
    if last is None:
        return _no_backend(chain)
    error = last.error
    if last.retry_after is not None:
        error.headers["retry-after"] = str(max(1, round(last.retry_after)))
    return error


def _no_backend(chain: tuple[Route, ...]) -> ServiceUnavailable:
    """No pool of the chain had a backend to try: every one is cooling down (or carries its
    one probe). Answered at once, with ``retry-after`` when the earliest probe is due (at
    least 1 s; 1 s too while only probes are in flight, whose answer comes soon)."""
    waits = [wait for route in chain if (wait := route.pool.retry_in()) is not None]
    seconds = max(1, math.ceil(min(waits))) if waits else 1
    return ServiceUnavailable(
        f"No backend of `{chain[0].model}` is available; retry in {seconds} s.",
        code="no_backend",
        headers={"retry-after": str(seconds)},
    )
