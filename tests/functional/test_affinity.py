"""``affinity: prompt`` on real routers over fakes that simulate a prefix cache (per instance):
a chat workload of 20 conversations x 10 turns keeps its cache hits as on one backend, and a
backend that dies moves only its own conversations."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import openai
import pytest

from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.fake_process import fake_upstream
from tests.functional.router_process import RouterProcess
from tests.functional.scrape import scrape

CONVERSATIONS = 20
TURNS = 10
SYSTEM = " ".join(f"rule{i}" for i in range(48))  # shared by every conversation


def pool(*fakes: Fake, affinity: str = "none", strategy: str = "round-robin") -> dict[str, Any]:
    keys = {"fake-b": UPSTREAM_KEY_B}
    backends = [backend(fake, keys.get(fake.name, UPSTREAM_KEY_A)) for fake in fakes]
    return {"gpt-4o": {"strategy": strategy, "affinity": affinity, "backends": backends}}


def cached_ratio(router: RouterProcess, fakes: tuple[Fake, ...]) -> float:
    """Run the workload (turn by turn, conversations interleaved); cached / prompt tokens."""
    for fake in fakes:
        fake.reset()
        fake.set_prefix_cache(100_000, min_tokens=32, block_tokens=16)
    Workload().run(router)
    stats = [fake.stats() for fake in fakes]
    return sum(s["cached_tokens"] for s in stats) / sum(s["prompt_tokens"] for s in stats)


class Workload:
    """20 chat conversations under one long shared system prompt. They take their turns in a
    shuffled order (users do not queue up in turn), seeded: the same run every time."""

    def __init__(self) -> None:
        self.histories: list[list[dict[str, str]]] = [
            [{"role": "system", "content": SYSTEM}] for _ in range(CONVERSATIONS)
        ]
        self.order = random.Random(14)
        self.turn = 0

    def run(self, router: RouterProcess, turns: int = TURNS) -> list[dict[int, str]]:
        """The next ``turns`` turns of every conversation: each turn's backend by conversation."""
        placed: list[dict[int, str]] = []
        with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
            for _ in range(turns):
                numbers = list(range(CONVERSATIONS))
                self.order.shuffle(numbers)
                placed.append({number: self._say(sdk, number) for number in numbers})
                self.turn += 1
        return placed

    def _say(self, sdk: openai.OpenAI, number: int) -> str:
        history = self.histories[number]
        words = " ".join(f"c{number}t{self.turn}w{i}" for i in range(24))
        history.append({"role": "user", "content": words})
        raw = sdk.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=history,  # type: ignore[arg-type]
        )
        history.append(
            {"role": "assistant", "content": raw.parse().choices[0].message.content or ""}
        )
        return raw.headers["x-switchyard-backend"]


@pytest.fixture
def fake_c() -> Iterator[Fake]:
    with fake_upstream("fake-c", api_key=UPSTREAM_KEY_A) as url:
        fake = Fake("fake-c", url)
        yield fake
        fake.http.close()


def test_affinity_keeps_the_single_backend_cache_ratio(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    single = cached_ratio(start_router(make_config(pool(fake_a))), (fake_a,))
    spread = cached_ratio(start_router(make_config(pool(fake_a, fake_b))), (fake_a, fake_b))
    router = start_router(make_config(pool(fake_a, fake_b, affinity="prompt")))
    kept = cached_ratio(router, (fake_a, fake_b))
    print(
        f"cached-token ratio: one backend {single:.3f}, round-robin {spread:.3f}, "
        f"affinity {kept:.3f} ({kept / single:.1%} of one backend)"
    )
    assert single > 0.5
    assert kept >= 0.95 * single
    assert spread < 0.9 * single  # the workload does tell the strategies apart
    # Both backends carry conversations.
    assert fake_a.stats()["prompt_tokens"] > 0
    assert fake_b.stats()["prompt_tokens"] > 0


def test_a_dead_backend_moves_only_its_conversations(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake, fake_c: Fake
) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(fake_upstream("fake-d", api_key=UPSTREAM_KEY_A))
        fake_d = Fake("fake-d", url)
        stack.callback(fake_d.http.close)
        fakes = (fake_a, fake_b, fake_c, fake_d)
        router = start_router(make_config(pool(*fakes, affinity="prompt")))
        workload = Workload()
        before = workload.run(router, 2)
        assert before[0] == before[1]  # every conversation stays where it started
        assert len(set(before[0].values())) >= 3  # and they spread
        stack.close()  # fake-d is gone: its process stopped
    after = workload.run(router, 2)
    for number, home in before[0].items():
        if home != "fake-d":
            assert after[0][number] == home, number
            assert after[1][number] == home, number
        else:
            assert after[0][number] != "fake-d"
            assert after[1][number] == after[0][number]


def test_cached_tokens_and_affinity_picks_are_counted(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    """Cached tokens from chat and responses, JSON and streams, match what the fakes reported;
    every pick on the affinity pool counts as a hit or a miss."""
    for fake in (fake_a, fake_b):
        fake.set_prefix_cache(10_000, min_tokens=32, block_tokens=16)
    router = start_router(make_config(pool(fake_a, fake_b, affinity="prompt")))
    long = " ".join(f"word{i}" for i in range(64))
    messages: Any = [{"role": "system", "content": long}, {"role": "user", "content": "hi"}]
    with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
        for _ in range(3):
            sdk.chat.completions.create(model="gpt-4o", messages=messages)
            list(sdk.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
            sdk.responses.create(model="gpt-4o", instructions=long, input="hi", store=False)
            with sdk.responses.stream(
                model="gpt-4o", instructions=long, input="hi", store=False
            ) as stream:
                stream.get_final_response()
    reported = fake_a.stats()["cached_tokens"] + fake_b.stats()["cached_tokens"]
    assert reported > 0
    metrics = scrape(f"{router.url}/metrics")
    assert metrics.sum("switchyard_cached_tokens_total", model="gpt-4o") == reported
    hits = metrics.sum("switchyard_affinity_picks_total", model="gpt-4o", result="hit")
    misses = metrics.sum("switchyard_affinity_picks_total", model="gpt-4o", result="miss")
    assert hits + misses == 12
    assert hits >= 10
