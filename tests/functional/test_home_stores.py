"""The home stores themselves (Redis with a TTL, SQLite with expiry), and a router whose Redis
goes away: lookups answer 503, answers still reach the client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import redis.asyncio

from router.homes import Home
from router.homes.record import Cached
from router.homes.redis import RedisHomes
from router.homes.sqlite import SQLiteHomes
from tests.functional.conftest import (
    CLIENT_KEY,
    Fake,
    RouterFactory,
    make_config,
    two_backend_models,
)
from tests.redis_server import RedisServer

HOME = Home("gpt-4o", "fake-a", "cfg-test")


async def test_redis_homes_expire_and_forget(private_redis: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(private_redis.url)
    try:
        homes = RedisHomes(client, "homes-unit:", ttl=60.0)
        await homes.put("resp_1", HOME)
        assert await homes.get("resp_1") == HOME
        ttl = await client.pttl("homes-unit:home:{resp_1}")
        assert 0 < ttl <= 60_000
        await client.set("homes-unit:home:{resp_2}", b"not json")
        assert await homes.get("resp_2") is None  # a foreign value is no home
        await homes.forget("resp_1")
        assert await homes.get("resp_1") is None
    finally:
        await client.aclose()


async def test_sqlite_homes_expire_survive_and_forget(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "homes.sqlite3"
    homes = SQLiteHomes(path, ttl=10.0, clock=lambda: now[0])
    await homes.put("resp_1", HOME)
    await homes.close()
    again = SQLiteHomes(path, ttl=10.0, clock=lambda: now[0])  # another process, a restart
    assert await again.get("resp_1") == HOME
    now[0] += 11
    assert await again.get("resp_1") is None  # expired
    await again.put("resp_2", HOME)  # and swept
    await again.forget("resp_2")
    assert await again.get("resp_2") is None
    await again.close()


async def test_the_cache_is_bounded(tmp_path: Path) -> None:
    cached = Cached(SQLiteHomes(tmp_path / "h.sqlite3", ttl=10.0), size=3)
    for i in range(10):
        await cached.put(f"resp_{i}", HOME)
    assert len(cached._homes) <= 3
    assert await cached.get("resp_0") == HOME  # read through from the store
    await cached.close()


def test_a_lost_redis_answers_503_and_still_relays(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake, tmp_path: Path
) -> None:
    with RedisServer() as server:
        config: dict[str, Any] = make_config(
            two_backend_models(fake_a, fake_b), redis={"url": server.url}
        )
        router = start_router(config)
        with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
            known = sdk.responses.create(model="gpt-4o", input="before")
            server.kill()
            assert sdk.responses.retrieve(known.id).id == known.id  # the process's copy
            made = sdk.responses.create(model="gpt-4o", input="during")  # not recorded
            assert made.output_text
        headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
        answer = httpx.get(f"{router.base_url}/responses/resp_unknown", headers=headers)
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "homes_unavailable"
        assert answer.headers["retry-after"] == "1"
        assert not any("Traceback" in line for line in router.lines)
