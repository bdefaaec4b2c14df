"""Stored responses and conversations through a pool of two accounts (two fakes, each with its
own store), with the official SDK: every follow-up, retrieve, delete, input_items and cancel
reaches the account that holds the id; another key gets 404; two routers sharing one Redis
agree; the embedded store survives a restart."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.functional.conftest import (
    CLIENT_KEY,
    Fake,
    RouterFactory,
    make_config,
    two_backend_models,
)
from tests.functional.router_process import RouterProcess
from tests.redis_server import RedisServer

OTHER_KEY = "sk-test-other-key-0123456789"
ADMIN_KEY = "sy-admin-test-key-0123456789abcdef"


def config(a: Fake, b: Fake, **sections: Any) -> dict[str, Any]:
    made = make_config(two_backend_models(a, b), admin={"key": ADMIN_KEY}, **sections)
    made["keys"].append({"name": "other", "key": OTHER_KEY, "models": ["*"]})
    return made


def sdk(router: RouterProcess, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0)


@pytest.fixture
def homes_router(start_router: RouterFactory, fake_a: Fake, fake_b: Fake) -> RouterProcess:
    return start_router(config(fake_a, fake_b))


@pytest.fixture
def client(homes_router: RouterProcess) -> Iterator[openai.OpenAI]:
    with sdk(homes_router) as made:
        yield made


def backend_of(client: openai.OpenAI, response_id: str) -> str:
    raw = client.responses.with_raw_response.retrieve(response_id)
    return raw.headers["x-switchyard-backend"]


def test_follow_ups_reach_their_account(client: openai.OpenAI) -> None:
    """100 follow-ups over 10 chains through round-robin: each continues its own account's
    response (the fake answers 400 previous_response_not_found anywhere else)."""
    heads = [client.responses.create(model="gpt-4o", input=f"chain {i}") for i in range(10)]
    homes = {head.id: backend_of(client, head.id) for head in heads}
    assert set(homes.values()) == {"fake-a", "fake-b"}  # new conversations still spread
    last = {head.id: head.id for head in heads}
    done = 0
    for turn in range(10):
        for head in heads:
            raw = client.responses.with_raw_response.create(
                model="gpt-4o", input=f"turn {turn}", previous_response_id=last[head.id]
            )
            answer = raw.parse()
            assert raw.headers["x-switchyard-backend"] == homes[head.id]
            assert f"[continues {last[head.id]}]" in answer.output_text
            last[head.id] = answer.id
            done += 1
    assert done == 100


def test_stream_follow_ups_reach_their_account(client: openai.OpenAI) -> None:
    """A stream's id is recorded before its first event is relayed: a follow-up sent as soon
    as ``response.created`` arrives already finds its home (100 of 100)."""
    previous: str | None = None
    homes: Counter[str] = Counter()
    for turn in range(100):
        kwargs: dict[str, Any] = {"previous_response_id": previous} if previous else {}
        if turn % 10 == 0:
            kwargs = {}  # a new chain every ten turns: new chains spread
        with client.responses.create(
            model="gpt-4o", input=f"turn {turn}", stream=True, **kwargs
        ) as stream:
            first = next(iter(stream))
            assert first.type == "response.created"
            created = first.response.id
            # Follow up on the id before the rest of the stream has been read.
            retrieved = client.responses.retrieve(created)
            assert retrieved.id == created
            events = list(stream)
        assert events[-1].type == "response.completed"
        if previous and kwargs:
            assert f"[continues {previous}]" in events[-1].response.output_text
        homes[backend_of(client, created)] += 1
        previous = created
    assert set(homes) == {"fake-a", "fake-b"}


def test_retrieve_delete_input_items_cancel(client: openai.OpenAI, fake_a: Fake) -> None:
    fake_a.set_background_seconds(30)
    made = [
        client.responses.create(model="gpt-4o", input=[{"role": "user", "content": f"q{i}"}])
        for i in range(100)
    ]
    for response in made:
        assert client.responses.retrieve(response.id).id == response.id
        items = client.responses.input_items.list(response.id, order="asc", limit=5)
        assert [item.model_dump()["content"][0]["text"] for item in items.data] == [
            response.output_text.split("says: ")[-1]
        ]
    for response in made:
        client.responses.delete(response.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(response.id)
    background = [
        client.responses.create(model="gpt-4o", input=f"bg {i}", background=True) for i in range(10)
    ]
    cancelled = [client.responses.cancel(response.id) for response in background]
    by_backend = {backend_of(client, r.id): r.status for r in cancelled}
    assert by_backend["fake-a"] == "cancelled"  # fake-a's take 30 s; fake-b's are done


def test_another_key_gets_404(homes_router: RouterProcess, client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o", input="mine", background=True)
    with sdk(homes_router, OTHER_KEY) as other:
        with pytest.raises(openai.NotFoundError) as retrieved:
            other.responses.retrieve(response.id)
        assert retrieved.value.body == {  # OpenAI's own words, OpenAI's shape
            "message": f"Response with id '{response.id}' not found.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(response.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.input_items.list(response.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.cancel(response.id)
        with pytest.raises(openai.BadRequestError) as follow_up:
            other.responses.create(model="gpt-4o", input="x", previous_response_id=response.id)
        assert follow_up.value.code == "previous_response_not_found"
    assert client.responses.retrieve(response.id).id == response.id  # still the owner's


def test_hostile_ids_never_reach_a_path(homes_router: RouterProcess) -> None:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    with httpx.Client(base_url=homes_router.url, headers=headers) as http:
        for path in ("/v1/responses/a%2F..%2Fx", "/v1/responses/a.b", "/v1/responses/%00"):
            answer = http.get(path)
            assert answer.status_code in (400, 404), path
            assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
        assert http.get("/v1/responses/resp_nothing").status_code == 404
        unknown = http.post(
            "/v1/responses", json={"model": "gpt-4o", "input": "x", "previous_response_id": "r"}
        )
        assert unknown.status_code == 400
        assert unknown.json()["error"]["code"] == "previous_response_not_found"


def test_conversations_stay_in_their_account(client: openai.OpenAI) -> None:
    conversations = [client.conversations.create(metadata={"n": str(i)}) for i in range(10)]
    homes = Counter(
        client.conversations.with_raw_response.retrieve(c.id).headers["x-switchyard-backend"]
        for c in conversations
    )
    assert set(homes) == {"fake-a", "fake-b"}
    for conversation in conversations:
        for turn in range(3):
            client.responses.create(model="gpt-4o", input=f"t{turn}", conversation=conversation.id)
        updated = client.conversations.update(conversation.id, metadata={"seen": "yes"})
        assert updated.metadata == {"seen": "yes"}
        added = client.conversations.items.create(
            conversation.id, items=[{"type": "message", "role": "user", "content": "note"}]
        )
        items = client.conversations.items.list(conversation.id, order="asc")
        assert len(items.data) == 7  # three turns of two items, and the note
        item_id = added.data[0].id
        assert item_id is not None
        item = client.conversations.items.retrieve(item_id, conversation_id=conversation.id)
        assert item.id == item_id
        client.conversations.items.delete(item_id, conversation_id=conversation.id)
        client.conversations.delete(conversation.id)
        with pytest.raises(openai.NotFoundError):
            client.conversations.retrieve(conversation.id)


def test_rotation_keeps_the_owner(homes_router: RouterProcess) -> None:
    admin = httpx.Client(
        base_url=homes_router.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    with admin:
        created = admin.post("/admin/keys", json={"name": "owner"}).json()
        with sdk(homes_router, created["key"]) as old:
            first = old.responses.create(model="gpt-4o", input="before")
        rotated = admin.post(f"/admin/keys/{created['id']}/rotate", json={"grace_seconds": 0})
        new_key = rotated.json()["key"]
    with sdk(homes_router, new_key) as new:
        answer = new.responses.create(model="gpt-4o", input="after", previous_response_id=first.id)
        assert f"[continues {first.id}]" in answer.output_text
        assert new.responses.retrieve(first.id).id == first.id


def test_ejected_home_answers_503_never_another_account(
    client: openai.OpenAI, fake_a: Fake, fake_b: Fake
) -> None:
    on_a = [
        r
        for r in (client.responses.create(model="gpt-4o", input="x") for _ in range(4))
        if backend_of(client, r.id) == "fake-a"
    ]
    assert on_a
    fake_a.fail_always({"status": 500})
    before_b = fake_b.stats()["requests"]
    statuses = []
    for _ in range(6):
        with pytest.raises(openai.APIStatusError) as failed:
            client.responses.create(model="gpt-4o", input="y", previous_response_id=on_a[0].id)
        statuses.append(failed.value.status_code)
    assert statuses[-1] == 503  # ejected: a clear 503
    assert set(statuses) <= {502, 503}  # the account's own failure, then ejected
    assert fake_b.stats()["requests"] == before_b  # not one went to the other account


def test_two_routers_sharing_redis(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake, private_redis: RedisServer
) -> None:
    shared = config(fake_a, fake_b, redis={"url": private_redis.url, "prefix": "homes-test:"})
    one, two = start_router(shared), start_router(shared)
    with sdk(one) as first, sdk(two) as second, sdk(two, OTHER_KEY) as other:
        for i in range(100):
            made = first.responses.create(model="gpt-4o", input=f"on one {i}")
            answer: openai.types.responses.Response
            if i % 2:
                with second.responses.stream(
                    model="gpt-4o", input="on two", previous_response_id=made.id
                ) as stream:
                    answer = stream.get_final_response()
            else:
                answer = second.responses.create(
                    model="gpt-4o", input="on two", previous_response_id=made.id
                )
            assert f"[continues {made.id}]" in answer.output_text
            assert first.responses.input_items.list(answer.id).data
            assert second.responses.retrieve(made.id).id == made.id
            with pytest.raises(openai.NotFoundError):
                other.responses.retrieve(made.id)


def test_homes_survive_a_restart_with_the_embedded_store(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake, tmp_path: Any
) -> None:
    embedded = config(fake_a, fake_b, store={"path": str(tmp_path / "store" / "keys.sqlite3")})
    first = start_router(embedded)
    with sdk(first) as client:
        made = [client.responses.create(model="gpt-4o", input=f"{i}") for i in range(6)]
    first.process.terminate()
    first.process.wait(timeout=20)
    again = start_router(embedded)
    with sdk(again) as client:
        for response in made:
            answer = client.responses.create(
                model="gpt-4o", input="later", previous_response_id=response.id
            )
            assert f"[continues {response.id}]" in answer.output_text
