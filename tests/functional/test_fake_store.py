"""The fake upstream as a provider account that keeps state: stored responses (retrieve, delete,
cancel, input_items, follow-ups) and conversations, each held by one instance only (issue 14).

Two fakes play two accounts: what one stores, the other does not know, with OpenAI's errors.
"""

from __future__ import annotations

import time

import openai
import pytest

from tests.functional.conftest import Fake
from tests.functional.fake_process import fake_upstream

DEADLINE = 20.0


def message_of(error: openai.APIStatusError) -> str:
    """The ``message`` of OpenAI's error body (the exception's own adds "Error code: ...")."""
    body = error.body
    assert isinstance(body, dict)
    return str(body["message"])


@pytest.fixture(scope="module")
def accounts():
    with fake_upstream("alpha") as a, fake_upstream("beta") as b:
        pair = Fake("alpha", a), Fake("beta", b)
        yield pair
        for fake in pair:
            fake.http.close()


@pytest.fixture
def fake(accounts):
    for account in accounts:
        account.reset()
    return accounts[0]


@pytest.fixture
def client(fake):
    with openai.OpenAI(base_url=fake.v1, api_key="sk-anything", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def other(accounts, fake):
    with openai.OpenAI(base_url=accounts[1].v1, api_key="sk-anything", max_retries=0) as sdk:
        yield sdk


# --- stored responses ---------------------------------------------------------------------------


def test_a_response_is_stored_and_retrieved(client, fake):
    created = client.responses.create(model="gpt-4o", input="hi there")
    assert created.store is True
    fetched = client.responses.retrieve(created.id)
    assert (fetched.id, fetched.status, fetched.output_text) == (
        created.id,
        "completed",
        "alpha says: hi there",
    )
    assert fetched.usage == created.usage
    assert fake.stats()["stored_responses"] == 1


def test_another_account_does_not_hold_it(client, other):
    created = client.responses.create(model="gpt-4o", input="hi")
    for call in (
        lambda: other.responses.retrieve(created.id),
        lambda: other.responses.delete(created.id),
        lambda: other.responses.cancel(created.id),
        lambda: other.responses.input_items.list(created.id),
    ):
        with pytest.raises(openai.NotFoundError) as missing:
            call()
        assert missing.value.body == {
            "message": f"Response with id '{created.id}' not found.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    with pytest.raises(openai.BadRequestError) as refused:
        other.responses.create(model="gpt-4o", input="more", previous_response_id=created.id)
    assert refused.value.body == {
        "message": f"Previous response with id '{created.id}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }


def test_follow_ups_carry_the_conversation(client):
    first = client.responses.create(model="gpt-4o", input="hi")
    second = client.responses.create(model="gpt-4o", input="again", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert second.output_text == f"alpha says: [continues {first.id}] again"
    assert second.usage is not None
    assert second.usage.input_tokens == 1 + 3 + 1  # "hi", "alpha says: hi", "again"
    with client.responses.stream(
        model="gpt-4o", input="third", previous_response_id=second.id
    ) as stream:
        third = stream.get_final_response()
    assert third.output_text == f"alpha says: [continues {second.id}] third"
    assert client.responses.retrieve(third.id).output_text == third.output_text
    assert third.usage is not None
    assert third.usage.input_tokens == 5 + 5 + 1


def test_azure_paths_reach_the_same_store(client, fake):
    created = client.responses.create(model="gpt-4o", input="hi")
    version = {"api-version": "2025-04-01-preview"}
    fetched = fake.http.get(f"/openai/responses/{created.id}", params=version)
    assert fetched.json()["output"][0]["content"][0]["text"] == "alpha says: hi"
    listed = fake.http.get(f"/openai/responses/{created.id}/input_items", params=version)
    assert listed.json()["data"][0]["content"] == [{"type": "input_text", "text": "hi"}]
    assert fake.http.delete(f"/openai/responses/{created.id}", params=version).json()["deleted"]
    assert fake.http.get(f"/openai/responses/{created.id}", params=version).status_code == 404


def test_store_false_is_not_kept(client):
    created = client.responses.create(model="gpt-4o", input="hi", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o", input="x", previous_response_id=created.id)


def test_delete_answers_the_deleted_object(client, fake):
    created = client.responses.create(model="gpt-4o", input="hi")
    answer = fake.http.delete(f"/v1/responses/{created.id}")
    assert answer.status_code == 200
    assert answer.json() == {"id": created.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)  # the SDK's own delete: gone already
    second = client.responses.create(model="gpt-4o", input="hi")
    assert client.responses.delete(second.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


def test_input_items_list_the_responses_own_input(client):
    items = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "input_text", "text": "second one"}]},
    ]
    created = client.responses.create(model="gpt-4o", input=items)
    listed = client.responses.input_items.list(created.id)
    assert [item.type for item in listed.data] == ["message"] * 3
    texts = [item.content[0].text for item in listed.data]
    assert texts == ["second one", "an answer", "first question"]  # newest first, as OpenAI
    assert (listed.first_id, listed.last_id) == (listed.data[0].id, listed.data[-1].id)
    oldest = client.responses.input_items.list(created.id, order="asc", limit=2)
    assert [item.content[0].text for item in oldest.data] == [
        "first question",
        "an answer",
    ]
    assert oldest.has_more is True
    rest = client.responses.input_items.list(
        created.id, order="asc", after=oldest.data[-1].id, limit=2
    )
    assert [item.id for item in rest.data] == [listed.data[0].id]
    assert rest.has_more is False


def test_background_response_runs_then_completes(client, fake):
    fake.set_background_seconds(0.3)
    created = client.responses.create(model="gpt-4o", input="later", background=True)
    assert (created.status, created.background, created.output) == ("queued", True, [])
    deadline = time.monotonic() + DEADLINE
    seen = [created.status]
    while seen[-1] != "completed" and time.monotonic() < deadline:
        status = client.responses.retrieve(created.id).status
        if status != seen[-1]:
            seen.append(status)
    assert seen[0] == "queued"
    assert seen[-1] == "completed"
    assert set(seen) <= {"queued", "in_progress", "completed"}
    done = client.responses.retrieve(created.id)
    assert done.output_text == "alpha says: later"
    assert client.responses.cancel(created.id).status == "completed"  # finished: unchanged


def test_cancel_a_background_response(client, fake):
    fake.set_background_seconds(600)
    created = client.responses.create(model="gpt-4o", input="slow", background=True)
    assert client.responses.cancel(created.id).status == "cancelled"
    assert client.responses.retrieve(created.id).status == "cancelled"
    assert client.responses.cancel(created.id).status == "cancelled"


def test_cancel_a_foreground_response_is_400(client):
    created = client.responses.create(model="gpt-4o", input="now")
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.cancel(created.id)
    assert message_of(refused.value) == (
        "Only responses created with background=true can be cancelled."
    )
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o", input="x", background=True, store=False)


def test_store_is_bounded():
    with fake_upstream("small", store_limit=2) as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0)
        with sdk:
            ids = [sdk.responses.create(model="gpt-4o", input=f"n{i}").id for i in range(3)]
            with pytest.raises(openai.NotFoundError):
                sdk.responses.retrieve(ids[0])
            assert [sdk.responses.retrieve(i).id for i in ids[1:]] == ids[1:]


# --- conversations ------------------------------------------------------------------------------


def test_conversation_lifecycle(client):
    created = client.conversations.create(
        items=[{"role": "user", "content": "hello"}], metadata={"topic": "demo"}
    )
    assert created.id.startswith("conv_")
    assert created.object == "conversation"
    assert client.conversations.retrieve(created.id).metadata == {"topic": "demo"}
    updated = client.conversations.update(created.id, metadata={"topic": "other"})
    assert updated.metadata == {"topic": "other"}
    added = client.conversations.items.create(
        created.id, items=[{"role": "assistant", "content": "hi back"}]
    )
    assert [item.type for item in added.data] == ["message"]
    listed = client.conversations.items.list(created.id, order="asc")
    assert [item.role for item in listed.data] == ["user", "assistant"]
    item = client.conversations.items.retrieve(listed.data[0].id, conversation_id=created.id)
    assert item.id == listed.data[0].id
    after = client.conversations.items.delete(listed.data[0].id, conversation_id=created.id)
    assert after.id == created.id
    assert len(client.conversations.items.list(created.id).data) == 1
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(listed.data[0].id, conversation_id=created.id)
    deleted = client.conversations.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        created.id,
        "conversation.deleted",
        True,
    )
    with pytest.raises(openai.NotFoundError) as missing:
        client.conversations.retrieve(created.id)
    assert message_of(missing.value) == f"Conversation with id '{created.id}' not found."


def test_responses_append_to_the_conversation_they_name(client, other):
    conversation = client.conversations.create()
    first = client.responses.create(model="gpt-4o", input="one", conversation=conversation.id)
    assert first.conversation is not None
    assert first.conversation.id == conversation.id
    second = client.responses.create(
        model="gpt-4o", input="two", conversation={"id": conversation.id}
    )
    assert second.usage is not None
    assert second.usage.input_tokens == 1 + 3 + 1  # the conversation so far, then "two"
    items = client.conversations.items.list(conversation.id, order="asc").data
    roles = [item.role for item in items]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert items[3].id == second.output[0].id
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="gpt-4o", input="x", conversation=conversation.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(
            model="gpt-4o",
            input="x",
            conversation=conversation.id,
            previous_response_id=first.id,
        )
