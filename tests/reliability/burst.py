"""A burst of concurrent requests against one key, held open upstream, and what came of it.

Every request of the burst ends up in one of two places: answered by the router (a refusal),
or admitted and held by the fake upstream (a ``delay_first_byte`` fault far longer than the
test). The burst is over when the two add up to its size; the held ones are then cancelled
(the client leaves, the router cancels them upstream) and their slots come back.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.functional.conftest import Fake

HOLD_SECONDS = 60.0  # an admitted request is held far longer than any burst takes
DECIDED_TIMEOUT = 45.0  # the whole burst is answered or held by then, even on a loaded machine
HELLO = [{"role": "user", "content": "Hello"}]


@dataclass
class Burst:
    """What a burst came to: the answers (status, body) and how many the upstream held."""

    answers: list[tuple[int, str]] = field(default_factory=list)
    held: int = 0

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for status, _ in self.answers:
            counts[status] = counts.get(status, 0) + 1
        return counts


async def burst(base_url: str, key: str, fake: Fake, size: int) -> Burst:
    """Send ``size`` chat requests at once with ``key``; wait until each is answered or held.

    The fake is shared by the session: what an earlier test left in flight there would count
    as held, so the burst starts once the fake holds nothing."""
    await _released(fake)
    fake.fail_always({"delay_first_byte": HOLD_SECONDS})
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=HOLD_SECONDS * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        headers = {"Authorization": f"Bearer {key}"}
        body = {"model": "gpt-4o", "messages": HELLO, "max_tokens": 5}

        async def one() -> tuple[int, str]:
            async with http.post(f"{base_url}/chat/completions", json=body, headers=headers) as r:
                return r.status, await r.text()

        tasks = [asyncio.create_task(one()) for _ in range(size)]
        result = Burst()
        try:
            result.held = await _decided(http, fake, tasks)
            result.answers = [task.result() for task in tasks if task.done()]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await _released(fake)
    fake.http.delete("/_fake/faults").raise_for_status()  # the next test finds it healthy
    return result


async def _decided(http: aiohttp.ClientSession, fake: Fake, tasks: list[Any]) -> int:
    """Poll (bounded) until answered + held upstream covers the burst; how many are held."""
    deadline = time.monotonic() + DECIDED_TIMEOUT
    while True:
        answered = sum(task.done() for task in tasks)
        held = await _inflight(http, fake)
        if answered + held >= len(tasks) or time.monotonic() > deadline:
            return held
        await asyncio.sleep(0.05)  # polling with a deadline, not standing in for an event


async def _released(fake: Fake) -> None:
    """The router cancels what the client left: the upstream holds nothing any more."""
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + DECIDED_TIMEOUT
        while time.monotonic() < deadline:
            if not await _inflight(http, fake):
                break
            await asyncio.sleep(0.05)  # polling with a deadline
        assert await _inflight(http, fake) == 0, "held requests were not cancelled upstream"


async def _inflight(http: aiohttp.ClientSession, fake: Fake) -> int:
    async with http.get(f"{fake.url}/_fake/stats") as response:
        stats = await response.json()
        held: int = stats["inflight"]
        return held
