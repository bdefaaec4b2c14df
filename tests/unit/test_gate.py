"""The gate's hand-overs on a real event loop, with real pools and backend states: the races a
functional test cannot time (a slot handed to a client that leaves before it resumes), the
pool going down under the queue, and the one timer that wakes it when a 429 cooldown ends."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from balancers import BackendState, Health, LeastInflight, Pool
from router.config import QueueConfig
from router.errors import RateLimited
from router.upstream.gate import Gate


def gate(*states: BackendState, max_wait: float = 5.0, max_depth: int = 10) -> Gate:
    pool = Pool("m", LeastInflight(random.Random(0)), states, clock=time.monotonic)
    return Gate("m", pool, QueueConfig(max_wait=max_wait, max_depth=max_depth))


def busy(name: str = "b") -> BackendState:
    state = BackendState(name, max_inflight=1)
    state.begin()
    return state


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_slot_freed_goes_to_the_waiter_already_counted_in_flight() -> None:
    state = busy()
    g = gate(state)
    assert not g.free()
    waiter = asyncio.ensure_future(g.wait("k", "default"))
    await settle()
    state.end()
    g.wake()
    assert state.inflight == 1  # reserved for the waiter before anyone else could run
    assert await waiter is state
    assert g.free() is False  # the slot is the waiter's now


async def test_a_slot_handed_to_a_client_that_left_goes_to_the_next() -> None:
    state = busy()
    g = gate(state)
    first = asyncio.ensure_future(g.wait("k1", "default"))
    second = asyncio.ensure_future(g.wait("k2", "default"))
    await settle()
    state.end()
    g.wake()  # handed to the first ...
    first.cancel()  # ... whose client leaves before it resumes
    await settle()
    assert first.cancelled()
    assert await second is state
    assert state.inflight == 1  # one reservation, not two, not none


async def test_a_client_that_leaves_while_queued_frees_its_place() -> None:
    state = busy()
    g = gate(state, max_depth=1)
    leaving = asyncio.ensure_future(g.wait("k", "default"))
    await settle()
    with pytest.raises(RateLimited):
        await g.wait("k", "default")  # full
    leaving.cancel()
    await settle()
    staying = asyncio.ensure_future(g.wait("k", "default"))  # the place is free again
    await settle()
    assert not staying.done()
    state.end()
    g.wake()
    assert await staying is state


async def test_a_pool_that_goes_down_releases_its_waiters_to_fail_fast() -> None:
    state = busy()
    g = gate(state)
    waiters = [asyncio.ensure_future(g.wait(f"k{i}", "batch")) for i in range(3)]
    await settle()
    for _ in range(3):
        state.on_failure(time.monotonic())
    assert state.health is Health.EJECTED
    state.end()
    g.wake()
    assert await asyncio.gather(*waiters) == [None, None, None]
    assert await g.wait("k", "default") is None  # down at arrival: no queueing at all


async def test_the_timer_wakes_the_queue_when_a_429_cooldown_ends() -> None:
    state = BackendState("b", max_inflight=4)
    state.on_rate_limited(time.monotonic(), 0.2)
    g = gate(state, max_wait=2.0)
    started = time.monotonic()
    assert await g.wait("k", "interactive") is state
    assert 0.15 <= time.monotonic() - started < 1.5
    assert state.health is Health.PROBING  # it went as the backend's one probe


async def test_waiters_behind_a_probe_wait_for_its_answer() -> None:
    """A 429 rest ends: one waiter goes as the probe; the others stay queued (not sent to a
    503) until the probe's answer opens the backend again."""
    state = BackendState("b", max_inflight=4)
    state.on_rate_limited(time.monotonic(), 0.1)
    g = gate(state, max_wait=5.0)
    probe = asyncio.ensure_future(g.wait("k1", "default"))
    behind = asyncio.ensure_future(g.wait("k2", "default"))
    assert await probe is state
    await settle()
    assert not behind.done()
    state.on_success(time.monotonic())  # the probe answered: HEALTHY, every slot open
    g.wake()  # what the backend's transition to HEALTHY does (router.upstream.backend)
    assert await behind is state
    assert state.inflight == 2


async def test_max_wait_sheds_on_the_timer() -> None:
    g = gate(busy(), max_wait=0.1)
    started = time.monotonic()
    with pytest.raises(RateLimited) as refused:
        await g.wait("k", "default")
    assert time.monotonic() - started >= 0.1
    assert refused.value.headers["retry-after"] == "1"
    assert refused.value.code == "rate_limit_exceeded"


async def test_a_cooldown_past_max_wait_is_not_waited_for() -> None:
    state = BackendState("b")
    state.on_rate_limited(time.monotonic(), 30.0)
    assert await gate(state, max_wait=1.0).wait("k", "default") is None
