"""The wait queue, end to end: a real router process, the fake upstream held busy with scripted
delays, the openai SDK as the client.

What each test shows: a key that floods cannot take more than its turn; an interactive key
barely waits while a batch key's backlog drains; a full queue and a long wait are answered 429
with ``retry-after``; a client that leaves frees its place at once; a request for another
model with a free backend is never held behind a full queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest

from tests.functional.conftest import (
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.router_process import RouterProcess
from tests.functional.scrape import scrape

KEYS = {
    "flood": "sk-test-queue-flood-0123456789",
    "quiet": "sk-test-queue-quiet-0123456789",
    "interactive": "sk-test-queue-interactive-0123",
    "batch": "sk-test-queue-batch-0123456789",
}
PRIORITY = {"interactive": "interactive", "batch": "batch"}


def queue_config(
    a: Fake, *, inflight: int, max_wait: float, max_depth: int, b: Fake | None = None
) -> dict[str, Any]:
    """gpt-4o on fake-a alone, ``inflight`` slots, behind a queue; gpt-4o-mini on fake-b (if
    given) with no queue of its own: the top-level queue is the default for every pool."""
    models: dict[str, Any] = {
        "gpt-4o": {
            "backends": [backend(a, UPSTREAM_KEY_A, max_inflight=inflight)],
            "queue": {"max_wait": max_wait, "max_depth": max_depth},
        }
    }
    if b is not None:
        models["gpt-4o-mini"] = {"backends": [backend(b, UPSTREAM_KEY_B)]}
    config = make_config(models)
    config["keys"] = [
        {"name": name, "key": key, "priority": PRIORITY.get(name, "default")}
        for name, key in KEYS.items()
    ]
    return config


@pytest.fixture
async def sdk(start_router: RouterFactory) -> AsyncIterator[Callable[..., openai.AsyncOpenAI]]:
    """SDK clients by key name, closed at the end (no retries: every answer is seen)."""
    made: list[openai.AsyncOpenAI] = []

    def client(router: RouterProcess, name: str, **options: Any) -> openai.AsyncOpenAI:
        options.setdefault("max_retries", 0)
        sdk = openai.AsyncOpenAI(base_url=router.base_url, api_key=KEYS[name], **options)
        made.append(sdk)
        return sdk

    yield client
    for sdk in made:
        await sdk.close()


def ask(client: openai.AsyncOpenAI, text: str, delay: float, model: str = "gpt-4o") -> Any:
    """A chat completion the fake answers after ``delay`` seconds (its per-request fault)."""
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        extra_body={"fake": {"delay_first_byte": delay}},
    )


def tags(fake: Fake) -> list[str]:
    """The user message of every request the fake got, in arrival order."""
    return [str(r["body"]).split('"content":"', 1)[1].split('"', 1)[0] for r in fake.requests()]


async def test_a_flooding_key_cannot_starve_a_quiet_one(
    start_router: RouterFactory, fake_a: Fake, sdk: Callable[..., openai.AsyncOpenAI]
) -> None:
    """Two slots; one key queues 100 requests, the other 10 just after. While both are
    backlogged the upstream sees them take turns: each gets at least 40% of the capacity
    (without a queue, the quiet key would get its 10 in after the flood's 100)."""
    router = start_router(queue_config(fake_a, inflight=2, max_wait=60, max_depth=500))
    flood, quiet = sdk(router, "flood"), sdk(router, "quiet")
    floods = [asyncio.ensure_future(ask(flood, f"flood-{i}", 0.05)) for i in range(100)]
    await wait_queued(router, 90)  # the flood is queued before the quiet key arrives
    quiets = [asyncio.ensure_future(ask(quiet, f"quiet-{i}", 0.05)) for i in range(10)]
    await asyncio.gather(*floods, *quiets)
    order = tags(fake_a)
    first = next(i for i, tag in enumerate(order) if tag.startswith("quiet"))
    last = max(i for i, tag in enumerate(order) if tag.startswith("quiet"))
    window = order[first : last + 1]  # both keys backlogged throughout
    share = sum(tag.startswith("quiet") for tag in window) / len(window)
    assert 0.4 <= share <= 0.6, window


async def test_interactive_waits_a_tenth_of_what_batch_waits(
    start_router: RouterFactory, fake_a: Fake, sdk: Callable[..., openai.AsyncOpenAI]
) -> None:
    """A batch key queues 60 requests on two slots (about 3 s of work); an interactive key
    asks once every 0.1 s meanwhile. Queue waits (the access log's duration less the upstream
    time) at p95: interactive no more than a tenth of batch."""
    router = start_router(queue_config(fake_a, inflight=2, max_wait=60, max_depth=500))
    batch, interactive = sdk(router, "batch"), sdk(router, "interactive")
    batches = [asyncio.ensure_future(ask(batch, f"batch-{i}", 0.1)) for i in range(60)]
    await wait_queued(router, 50)
    for i in range(10):
        await ask(interactive, f"interactive-{i}", 0.1)
        await asyncio.sleep(0.1)  # the traffic's shape: one request every 0.1 s, not a sync
    await asyncio.gather(*batches)
    waits: dict[str, list[float]] = {"cfg-batch": [], "cfg-interactive": []}
    for line in chat_lines(router, 70):
        waits[line["key_id"]].append(line["duration_ms"] - line["upstream_ms"])
    assert len(waits["cfg-batch"]) == 60
    assert len(waits["cfg-interactive"]) == 10
    assert p95(waits["cfg-interactive"]) <= p95(waits["cfg-batch"]) / 10, waits


async def test_a_full_queue_answers_429_with_retry_after(
    start_router: RouterFactory, fake_a: Fake, sdk: Callable[..., openai.AsyncOpenAI]
) -> None:
    router = start_router(queue_config(fake_a, inflight=1, max_wait=30, max_depth=1))
    client = sdk(router, "flood")
    busy = asyncio.ensure_future(ask(client, "busy", 1.0))
    await wait_upstream(fake_a, 1)
    queued = asyncio.ensure_future(ask(client, "queued", 0.0))
    await wait_queued(router, 1)
    with pytest.raises(openai.RateLimitError) as refused:
        await ask(client, "refused", 0.0)
    assert refused.value.response.headers["retry-after"].isdigit()
    body = refused.value.response.json()["error"]
    assert body["code"] == "rate_limit_exceeded"
    assert body["type"] == "requests"
    assert "queue is full" in body["message"]
    await asyncio.gather(busy, queued)  # both served in turn
    shed = scrape(f"{router.url}/metrics").sum("switchyard_queue_shed_total", reason="max_depth")
    assert shed == 1
    assert tags(fake_a) == ["busy", "queued"]


async def test_max_wait_sheds_with_429_and_retry_after(
    start_router: RouterFactory, fake_a: Fake, sdk: Callable[..., openai.AsyncOpenAI]
) -> None:
    router = start_router(queue_config(fake_a, inflight=1, max_wait=0.3, max_depth=10))
    client = sdk(router, "flood")
    busy = asyncio.ensure_future(ask(client, "busy", 2.0))
    await wait_upstream(fake_a, 1)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as refused:
        await ask(client, "too-late", 0.0)
    assert 0.3 <= time.monotonic() - started < 1.5
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert refused.value.response.json()["error"]["code"] == "rate_limit_exceeded"
    await busy
    assert tags(fake_a) == ["busy"]  # the shed request never went upstream
    reading = scrape(f"{router.url}/metrics")
    assert reading.sum("switchyard_queue_shed_total", reason="max_wait") == 1
    assert reading.sum("switchyard_queue_depth") == 0


async def test_a_client_that_leaves_frees_its_place_at_once(
    start_router: RouterFactory, fake_a: Fake, sdk: Callable[..., openai.AsyncOpenAI]
) -> None:
    """Queue of one: the waiting client hangs up; its place is free for the next request at
    once (not at max_wait), and the request that left never reaches the upstream."""
    router = start_router(queue_config(fake_a, inflight=1, max_wait=30, max_depth=1))
    client = sdk(router, "flood")
    busy = asyncio.ensure_future(ask(client, "busy", 1.5))
    await wait_upstream(fake_a, 1)
    leaving = asyncio.ensure_future(ask(client, "leaving", 0.0))
    await wait_queued(router, 1)
    leaving.cancel()  # the SDK closes its connection: the router's handler is cancelled
    await poll(lambda: shed(router, "disconnect") == 1)
    assert scrape(f"{router.url}/metrics").sum("switchyard_queue_depth") == 0
    next_one = asyncio.ensure_future(ask(client, "next", 0.0))
    await wait_queued(router, 1)  # queued, not refused: the place was free
    await asyncio.gather(busy, next_one)
    assert tags(fake_a) == ["busy", "next"]
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_no_head_of_line_blocking_across_models(
    start_router: RouterFactory,
    fake_a: Fake,
    fake_b: Fake,
    sdk: Callable[..., openai.AsyncOpenAI],
) -> None:
    """gpt-4o's one slot is busy and its queue full; gpt-4o-mini (another pool, a free
    backend) is answered at once all the same."""
    router = start_router(queue_config(fake_a, inflight=1, max_wait=30, max_depth=1, b=fake_b))
    client = sdk(router, "flood")
    busy = asyncio.ensure_future(ask(client, "busy", 2.0))
    await wait_upstream(fake_a, 1)
    queued = asyncio.ensure_future(ask(client, "queued", 0.0))
    await wait_queued(router, 1)
    with pytest.raises(openai.RateLimitError):
        await ask(client, "refused", 0.0)
    started = time.monotonic()
    reply = await ask(client, "other-model", 0.0, model="gpt-4o-mini")
    assert time.monotonic() - started < 1.0  # not behind gpt-4o's 2 s
    assert reply.choices[0].message.content == "fake-b says: other-model"
    assert not busy.done()
    assert not queued.done()
    await asyncio.gather(busy, queued)


async def test_a_request_waits_out_a_429_cooldown_instead_of_failing(
    start_router: RouterFactory, fake_a: Fake, sdk: Callable[..., openai.AsyncOpenAI]
) -> None:
    """The account answers 429 with ``retry-after: 1``: its backend rests for a second. The
    next request waits that second in the queue (the timer on the rest's end) and is served,
    where without a queue it would get 503 ``no_backend`` at once."""
    router = start_router(queue_config(fake_a, inflight=4, max_wait=5, max_depth=10))
    client = sdk(router, "flood")
    with pytest.raises(openai.APIStatusError):  # the pool's only backend said 429
        await client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "refused"}],
            extra_body={"fake": {"retry_after": 1}},
        )
    started = time.monotonic()
    reply = await ask(client, "after-the-rest", 0.0)
    assert 0.5 <= time.monotonic() - started < 4.0
    assert reply.choices[0].message.content == "fake-a says: after-the-rest"
    assert scrape(f"{router.url}/metrics").sum("switchyard_queue_wait_seconds_count") == 1


async def test_without_a_queue_a_busy_pool_serves_as_before(
    start_router: RouterFactory, fake_a: Fake, sdk: Callable[..., openai.AsyncOpenAI]
) -> None:
    """No ``queue``: requests past max_inflight wait for a connection as they always did,
    none is refused, and no queue series exists."""
    config = queue_config(fake_a, inflight=1, max_wait=1, max_depth=1)
    del config["models"]["gpt-4o"]["queue"]
    router = start_router(config)
    client = sdk(router, "flood")
    replies = await asyncio.gather(*(ask(client, f"r{i}", 0.05) for i in range(5)))
    assert len(replies) == 5
    assert "switchyard_queue_depth" not in scrape(f"{router.url}/metrics").names()


# --- helpers ---------------------------------------------------------------------------------


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def chat_lines(router: RouterProcess, count: int) -> list[dict[str, Any]]:
    """The access lines of chat requests, once ``count`` are written (the log trails)."""

    def chats() -> list[dict[str, Any]]:
        return [line for line in router.access() if line["path"] == "/v1/chat/completions"]

    with router.changed:
        router.changed.wait_for(lambda: len(chats()) >= count, timeout=10)
    return chats()


def shed(router: RouterProcess, reason: str) -> float:
    return scrape(f"{router.url}/metrics").sum("switchyard_queue_shed_total", reason=reason)


async def wait_queued(router: RouterProcess, depth: int) -> None:
    """Until the router's queue gauge shows at least ``depth`` waiting."""
    url = f"{router.url}/metrics"
    await poll(lambda: scrape(url).sum("switchyard_queue_depth") >= depth)


async def wait_upstream(fake: Fake, count: int) -> None:
    """Until the fake has received ``count`` requests (it records them on arrival)."""
    await poll(lambda: len(fake.requests()) >= count)


async def poll(condition: Callable[[], bool], within: float = 10.0) -> None:
    """A bounded poll of a real condition, off the event loop (the helpers block)."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
