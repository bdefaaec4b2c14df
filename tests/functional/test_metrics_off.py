"""``metrics.enabled: false``: every path that records (requests, streams, retries, limits,
realtime sessions) runs against the recorder that does nothing, and ``/metrics`` is gone."""

from __future__ import annotations

import httpx
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.conftest import (
    CLIENT_KEY,
    Fake,
    RouterFactory,
    make_config,
    two_backend_models,
)
from tests.functional.realtime_client import converse, sdk

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]


async def test_every_recording_path_works_with_metrics_off(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    config = make_config(two_backend_models(fake_a, fake_b), metrics={"enabled": False})
    config["keys"].append(
        {"name": "capped", "key": "sk-test-capped-key-0123456789", "limits": {"rpm": 100}}
    )
    router = start_router(config)
    fake_a.fail_next({"status": 503})  # one of the first two requests meets it: a retry
    async with sdk(router) as client:
        for _ in range(2):
            reply = await client.chat.completions.create(model="gpt-4o", messages=HELLO)
            assert reply.choices[0].message.content
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            stream=True,
        )
        assert [chunk async for chunk in stream]
        async with client.realtime.connect(model="gpt-4o") as connection:
            assert (await converse(connection, "Hello there")).total_tokens
    async with httpx.AsyncClient(base_url=router.url, timeout=30) as http:
        capped = await http.post(
            "/v1/embeddings",
            json={"model": "text-embedding-3-small", "input": "hi"},
            headers={"Authorization": "Bearer sk-test-capped-key-0123456789"},
        )
        assert capped.status_code == 200
        assert capped.headers["x-ratelimit-limit-requests"] == "100"
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
        assert scraped.status_code == 404
    lines = router.wait_access(6)
    assert (
        sorted(line["attempts"] for line in lines if line["path"] == "/v1/chat/completions")[-1]
        == 2
    )
    assert not [line for line in router.lines if "Traceback" in line]
