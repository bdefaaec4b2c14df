"""A key's ``priority``: set through the admin API and the CLI, checked like every key field,
kept by rotation, export/import and a Redis restore, and obeyed by a pool's wait queue."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.auth.redis_store import RedisStore
from router.auth.restore import RestoringStore
from router.auth.service import KeyService
from router.auth.snapshot import KeySnapshot
from tests.functional.conftest import UPSTREAM_KEY_A, Fake, RouterFactory, backend, make_config
from tests.functional.test_keys_cli import Keys
from tests.functional.test_queue import tags, wait_queued, wait_upstream
from tests.redis_server import RedisServer

ADMIN_KEY = "sy-admin-test-key-0123456789abcdef"


def queued_router_config(fake: Fake) -> dict[str, Any]:
    """gpt-4o: one slot, a queue; the admin API on."""
    pool = {
        "backends": [backend(fake, UPSTREAM_KEY_A, max_inflight=1)],
        "queue": {"max_wait": 30, "max_depth": 10},
    }
    return make_config({"gpt-4o": pool}, admin={"key": ADMIN_KEY})


def created(admin: httpx.Client, **body: Any) -> dict[str, Any]:
    response = admin.post("/admin/keys", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def made_through_the_admin_api(url: str) -> tuple[str, str]:
    """A batch key, and a default key patched to interactive then rotated: their secrets."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as admin:
        batch = created(admin, name="nightly", priority="batch")
        assert batch["priority"] == "batch"
        plain = created(admin, name="web")
        assert plain["priority"] == "default"
        patched = admin.patch(f"/admin/keys/{plain['id']}", json={"priority": "interactive"})
        assert patched.json()["priority"] == "interactive"
        rotated = admin.post(f"/admin/keys/{plain['id']}/rotate", json={"grace_seconds": 0})
        assert rotated.json()["priority"] == "interactive"  # rotation keeps it
        return batch["key"], rotated.json()["key"]


async def test_admin_api_sets_priority_and_the_queue_obeys_it(
    start_router: RouterFactory, fake_a: Fake
) -> None:
    """Keys made and edited through the admin API: batch queued first, interactive after,
    and the interactive request goes upstream first when the slot frees."""
    router = start_router(queued_router_config(fake_a))
    batch_key, interactive_key = made_through_the_admin_api(router.url)
    clients = [
        openai.AsyncOpenAI(base_url=router.base_url, api_key=key, max_retries=0)
        for key in (batch_key, interactive_key)
    ]

    def ask(sdk: openai.AsyncOpenAI, tag: str, delay: float = 0.0) -> asyncio.Future[Any]:
        return asyncio.ensure_future(
            sdk.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": tag}],
                extra_body={"fake": {"delay_first_byte": delay}},
            )
        )

    try:
        hold = ask(clients[0], "hold", 2.0)
        await wait_upstream(fake_a, 1)
        later = ask(clients[0], "batch")
        await wait_queued(router, 1)  # the batch request queued first ...
        urgent = ask(clients[1], "interactive")
        await wait_queued(router, 2)
        await asyncio.gather(hold, later, urgent)
    finally:
        for sdk in clients:
            await sdk.close()
    assert tags(fake_a) == ["hold", "interactive", "batch"]  # ... served after interactive


@pytest.mark.parametrize(
    ("value", "code"), [("urgent", "invalid_value"), (3, "invalid_type"), (None, "invalid_type")]
)
def test_admin_api_refuses_a_bad_priority(
    start_router: RouterFactory, fake_a: Fake, value: object, code: str
) -> None:
    router = start_router(queued_router_config(fake_a))
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=router.url, headers=headers, timeout=10) as admin:
        response = admin.post("/admin/keys", json={"name": "x", "priority": value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("priority", code)


def test_cli_create_and_export_import_keep_priority(
    tmp_path: Path, fake_a: Fake, fake_b: Fake
) -> None:
    models = {"gpt-4o": {"backends": [backend(fake_a, UPSTREAM_KEY_A)]}}
    source = Keys(make_config(models, store={"path": str(tmp_path / "a.db")}), tmp_path / "a.yml")
    target = Keys(make_config(models, store={"path": str(tmp_path / "b.db")}), tmp_path / "b.yml")
    made = source.ok("create", "--name", "nightly", "--priority", "batch")
    assert made["priority"] == "batch"
    assert source.ok("create", "--name", "plain")["priority"] == "default"
    refused = source.run("create", "--name", "x", "--priority", "urgent")
    assert refused.returncode == 2
    assert "invalid choice" in refused.stderr
    backup = tmp_path / "keys.jsonl"
    assert source.run("export", "-o", str(backup)).returncode == 0
    assert target.ok("import", str(backup))["written"] == 2
    listed = {key["name"]: key["priority"] for key in target.ok("list")["data"]}
    assert listed == {"nightly": "batch", "plain": "default"}


async def test_priority_survives_a_redis_restore() -> None:
    """Redis comes back empty; the router's snapshot writes the record back, priority
    included (the record is one JSON value: merge.lua keeps it whole)."""
    with RedisServer() as server:
        store = RestoringStore(RedisStore.from_url(server.url), KeySnapshot())
        try:
            service = KeyService(store)
            record, _ = await service.create("nightly", priority="batch")
            await store.check()
            client = store.store.client
            await client.flushall()
            await store.check()
            assert store.restores == 1
            restored = await store.store.get(record.id)
            assert restored is not None
            assert restored.priority == "batch"
        finally:
            await store.close()
