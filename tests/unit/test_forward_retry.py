"""The forwarder's retry loop: how many tries, in what order, and which failure the client sees.

Pure: the attempts are in-memory functions, the pool a real :class:`~balancers.Pool`; no socket.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from balancers import BackendState, Pool, make_strategy
from router.config import RetryConfig
from router.context import RequestContext
from router.errors import UpstreamError
from router.upstream.errors import Retryable
from router.upstream.forward import Forwarder
from router.upstream.route import Route


class _Backend:
    """What the forwarder reads of a backend: its name (and whether it declares limits)."""

    declared = None

    def __init__(self, name: str) -> None:
        self.name = name


def _route(*names: str) -> Route:
    states = [BackendState(name) for name in names]
    pool = Pool(
        "m",
        make_strategy("round-robin", __import__("random").Random(1)),
        states,
        clock=time.monotonic,
    )
    backends: Any = {name: _Backend(name) for name in names}
    return Route("m", "chat", pool, backends)


def _failing(tries: list[str]) -> Any:
    async def attempt(backend: _Backend, route: Route) -> str:
        tries.append(backend.name)
        raise Retryable(UpstreamError(f"{backend.name} failed"), "status_5xx")

    return attempt


def _run(forwarder: Forwarder, route: Route, attempt: Any) -> Any:
    return asyncio.run(forwarder.forward((route,), attempt, RequestContext()))


def _forwarder(**retry: Any) -> Forwarder:
    config = RetryConfig.model_validate({"backoff_initial": 0, "backoff_max": 0, **retry})
    return Forwarder(config)


def test_each_backend_once_then_the_last_failure() -> None:
    tries: list[str] = []
    with pytest.raises(UpstreamError, match="failed"):
        asyncio.run(
            _forwarder(attempts=5).forward(
                (_route("a", "b", "c"),), _failing(tries), RequestContext()
            )
        )
    assert sorted(tries) == ["a", "b", "c"]  # never a backend twice, however many attempts


def test_attempts_bound_the_tries() -> None:
    tries: list[str] = []
    with pytest.raises(UpstreamError):
        asyncio.run(
            _forwarder(attempts=2).forward(
                (_route("a", "b", "c"),), _failing(tries), RequestContext()
            )
        )
    assert len(tries) == 2


def test_an_empty_budget_stops_the_retries() -> None:
    tries: list[str] = []
    forwarder = _forwarder(attempts=3, budget_percent=0, budget_min_per_second=0)
    with pytest.raises(UpstreamError):
        _run(forwarder, _route("a", "b", "c"), _failing(tries))
    assert len(tries) == 1


def test_a_retry_that_succeeds_is_the_answer() -> None:
    tries: list[str] = []

    async def second_time_lucky(backend: Any, route: Route) -> str:
        tries.append(backend.name)
        if len(tries) == 1:
            raise Retryable(UpstreamError("no"), "timeout")
        return str(backend.name)

    ctx = RequestContext()
    answer = asyncio.run(_forwarder().forward((_route("a", "b"),), second_time_lucky, ctx))
    assert answer == tries[1] != tries[0]
    assert ctx.attempts == 2


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    forwarder = _forwarder(backoff_initial=0.1, backoff_max=0.3)
    for retry, cap in ((1, 0.1), (2, 0.2), (3, 0.3), (9, 0.3)):
        draws = [forwarder.backoff(retry) for _ in range(200)]
        assert all(0 <= draw <= cap for draw in draws)
        assert max(draws) > cap / 2  # spread over the range, not pinned at 0
