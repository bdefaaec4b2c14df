"""The admin API (``/admin/keys``) on real router processes: keys are made with httpx and used
with the official openai SDK, as a client would use them.

Changes reach a router through its key store's invalidation (within a second, DESIGN.md §4), so
every "now it is refused" is polled against a deadline, and the cross-process tests measure the
time from the admin call's answer to the first refusal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.conftest import (
    CLIENT_KEY,
    Fake,
    RouterFactory,
    make_config,
    two_backend_models,
)
from tests.functional.router_process import RouterProcess, router_process
from tests.redis_server import RedisServer
from tests.reliability.scan import assert_clean

ADMIN_KEY = "sy-admin-test-key-0123456789abcdef"
PROPAGATION_BOUND = 1.0  # every router sees a change within a second
POLL_DEADLINE = 5.0  # polls run past the bound, so a slow change reports its real time
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]
ABSENT_ID = "aaaaaaaaaaaa"  # id-shaped, never created (ids are random)


@pytest.fixture(scope="module")
def admin_router(
    fakes: tuple[Fake, Fake], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    """One router for the tests that need no store of their own (each makes its own keys)."""
    config = make_config(two_backend_models(*fakes), admin={"key": ADMIN_KEY})
    with router_process(config, tmp_path_factory.mktemp("admin")) as router:
        yield router


@pytest.fixture
def admin(admin_router: RouterProcess, fake_a: Fake) -> Iterator[httpx.Client]:
    with admin_client(admin_router) as http:
        yield http


def admin_client(router: RouterProcess, key: str | None = ADMIN_KEY) -> httpx.Client:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.Client(base_url=router.url, headers=headers, timeout=10)


def create(admin: httpx.Client, **body: Any) -> dict[str, Any]:
    response = admin.post("/admin/keys", json={"name": "test", **body})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created: dict[str, Any] = response.json()
    return created


def chat(router: RouterProcess, key: str, model: str = "gpt-4o") -> str:
    with openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0) as sdk:
        reply = sdk.chat.completions.create(model=model, messages=HELLO)
    assert reply.choices[0].message.content is not None
    return reply.choices[0].message.content


def list_models(router: RouterProcess, key: str) -> None:
    with openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0) as sdk:
        sdk.models.list()


def seconds_until_raises(
    call: Callable[[], object], error: type[Exception], since: float | None = None
) -> float:
    """Call until it raises ``error``; the seconds from ``since`` (default: now) to then."""
    start = time.monotonic() if since is None else since
    while True:
        try:
            call()
        except error:
            return time.monotonic() - start
        assert time.monotonic() - start < POLL_DEADLINE, f"still no {error.__name__}"
        time.sleep(0.01)  # a pause between polls; the deadline above bounds the wait


# --- the key lifecycle -----------------------------------------------------------------------


def test_created_key_serves_and_lists_without_secrets(
    admin: httpx.Client, admin_router: RouterProcess
) -> None:
    created = create(admin, name="ci-bot", models=["gpt-4o*"], limits={"rpm": 100})
    secret = created["key"]
    assert secret.startswith(f"sk-sy-{created['id']}-")
    assert created["name"] == "ci-bot"
    assert created["models"] == ["gpt-4o*"]
    assert created["limits"] == {"rpm": 100, "tpm": None, "concurrency": None}
    assert created["state"] == "active"
    assert created["expires_at"] is None

    assert chat(admin_router, secret).endswith("says: Hello there")

    listing = admin.get("/admin/keys")
    assert listing.status_code == 200
    assert listing.headers["cache-control"] == "no-store"
    assert secret not in listing.text
    assert secret.rsplit("-", 1)[-1] not in listing.text
    assert "hash" not in listing.text
    body = listing.json()
    assert body["object"] == "list"
    listed = next(item for item in body["data"] if item["id"] == created["id"])
    assert "key" not in listed

    fetched = admin.get(f"/admin/keys/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.headers["cache-control"] == "no-store"
    # All but the secret, and last_used_at, which the router records in batches.
    expected = {k: v for k, v in created.items() if k not in ("key", "last_used_at")}
    assert {k: v for k, v in fetched.json().items() if k != "last_used_at"} == expected
    assert "hash" not in fetched.text

    # The log has the event, by id; never the secret or the admin key.
    def logged() -> bool:
        return any(
            r.get("msg") == "key created" and r.get("key_id") == created["id"]
            for r in admin_router.records()
        )

    with admin_router.changed:  # the log line may trail the answer
        assert admin_router.changed.wait_for(logged, timeout=10)
    assert not any(secret in line or ADMIN_KEY in line for line in admin_router.lines)


def test_config_keys_work_beside_stored_keys(
    admin: httpx.Client, admin_router: RouterProcess
) -> None:
    stored = create(admin)["key"]
    assert chat(admin_router, stored).endswith("says: Hello there")
    assert chat(admin_router, CLIENT_KEY).endswith("says: Hello there")


def test_patch_narrows_models_and_merges_limits(
    admin: httpx.Client, admin_router: RouterProcess
) -> None:
    created = create(admin, limits={"rpm": 100, "tpm": 5000})
    secret = created["key"]
    chat(admin_router, secret, "gpt-4o")

    patched = admin.patch(
        f"/admin/keys/{created['id']}",
        json={"name": "renamed", "models": ["gpt-4o-mini"], "limits": {"rpm": None}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["cache-control"] == "no-store"
    record = patched.json()
    assert record["name"] == "renamed"
    assert record["models"] == ["gpt-4o-mini"]
    assert record["limits"] == {"rpm": None, "tpm": 5000, "concurrency": None}  # tpm kept
    assert "key" not in record

    elapsed = seconds_until_raises(lambda: chat(admin_router, secret), openai.NotFoundError)
    assert elapsed < PROPAGATION_BOUND
    assert chat(admin_router, secret, "gpt-4o-mini").endswith("says: Hello there")


def test_empty_patch_changes_nothing(admin: httpx.Client) -> None:
    created = create(admin, name="same")
    patched = admin.patch(f"/admin/keys/{created['id']}", json={})
    assert patched.status_code == 200
    assert patched.json()["name"] == "same"


def test_rotate_with_grace_accepts_both_secrets(
    admin: httpx.Client, admin_router: RouterProcess
) -> None:
    created = create(admin)
    old = created["key"]
    chat(admin_router, old)

    before = time.time()
    rotated = admin.post(f"/admin/keys/{created['id']}/rotate", json={"grace_seconds": 600})
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new = rotated.json()["key"]
    assert new != old
    assert new.startswith(f"sk-sy-{created['id']}-")
    assert rotated.json()["rotation_grace_until"] >= before + 600

    assert chat(admin_router, new).endswith("says: Hello there")
    assert chat(admin_router, old).endswith("says: Hello there")


def test_rotate_defaults_to_a_day_of_grace(admin: httpx.Client) -> None:
    created = create(admin)
    before = time.time()
    rotated = admin.post(f"/admin/keys/{created['id']}/rotate")  # no body at all
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["rotation_grace_until"] >= before + 86400


def test_rotate_without_grace_refuses_the_old_secret(
    admin: httpx.Client, admin_router: RouterProcess
) -> None:
    created = create(admin)
    old = created["key"]
    chat(admin_router, old)

    rotated = admin.post(f"/admin/keys/{created['id']}/rotate", json={"grace_seconds": 0})
    assert rotated.status_code == 200, rotated.text
    assert "rotation_grace_until" not in rotated.json()
    new = rotated.json()["key"]

    elapsed = seconds_until_raises(lambda: chat(admin_router, old), openai.AuthenticationError)
    assert elapsed < PROPAGATION_BOUND
    assert chat(admin_router, new).endswith("says: Hello there")


def test_revoke_refuses_the_key_and_is_idempotent(
    admin: httpx.Client, admin_router: RouterProcess
) -> None:
    created = create(admin)
    secret = created["key"]
    chat(admin_router, secret)

    revoked = admin.delete(f"/admin/keys/{created['id']}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.headers["cache-control"] == "no-store"
    assert revoked.json()["state"] == "revoked"
    assert "key" not in revoked.json()

    elapsed = seconds_until_raises(lambda: chat(admin_router, secret), openai.AuthenticationError)
    assert elapsed < PROPAGATION_BOUND

    again = admin.delete(f"/admin/keys/{created['id']}")
    assert again.status_code == 200
    assert again.json()["state"] == "revoked"
    assert admin.get(f"/admin/keys/{created['id']}").json()["state"] == "revoked"

    rotated = admin.post(f"/admin/keys/{created['id']}/rotate")
    assert rotated.status_code == 400
    assert rotated.json()["error"]["code"] == "key_revoked"


def test_expired_keys_are_refused(admin: httpx.Client, admin_router: RouterProcess) -> None:
    past = create(admin, expires_at=time.time() - 10)
    with pytest.raises(openai.AuthenticationError):
        chat(admin_router, past["key"])

    current = create(admin, expires_at=time.time() + 3600)
    secret = current["key"]
    chat(admin_router, secret)
    expire = admin.patch(f"/admin/keys/{current['id']}", json={"expires_at": time.time() - 1})
    assert expire.status_code == 200, expire.text
    seconds_until_raises(lambda: chat(admin_router, secret), openai.AuthenticationError)

    # null clears the expiry: the key works again.
    cleared = admin.patch(f"/admin/keys/{current['id']}", json={"expires_at": None})
    assert cleared.json()["expires_at"] is None
    assert chat(admin_router, secret).endswith("says: Hello there")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/admin/keys/{ABSENT_ID}"),
        ("PATCH", f"/admin/keys/{ABSENT_ID}"),
        ("DELETE", f"/admin/keys/{ABSENT_ID}"),
        ("POST", f"/admin/keys/{ABSENT_ID}/rotate"),
        ("GET", "/admin/keys/not-an-id"),
        ("DELETE", "/admin/keys/sk-sy-pasted-a-whole-key-here"),
    ],
)
def test_unknown_key_id_is_404(admin: httpx.Client, method: str, path: str) -> None:
    response = admin.request(method, path, json={"name": "x"} if method == "PATCH" else None)
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"
    error = response.json()["error"]
    assert error["code"] == "key_not_found"
    assert error["param"] == "id"
    assert "pasted" not in error["message"]


def test_unknown_admin_urls_and_methods(admin: httpx.Client) -> None:
    assert admin.put("/admin/keys").status_code == 405
    assert admin.put("/admin/keys").headers["allow"] == "GET, HEAD, POST"
    assert admin.get("/admin/nothing-here").status_code == 404
    assert admin.get("/admin").status_code == 404


# --- who may call it -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer sy-admin-wrong-key-0123456789abcdef",
        f"Bearer {CLIENT_KEY}",
        f"Basic {ADMIN_KEY}",
        "Bearer",
    ],
    ids=["no-header", "wrong-key", "client-key", "not-bearer", "empty-bearer"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/admin/keys"), ("POST", "/admin/keys"), ("PUT", "/admin/whatever")],
)
def test_admin_routes_need_the_admin_key(
    admin_router: RouterProcess, authorization: str | None, method: str, path: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with admin_client(admin_router, key=None) as http:
        response = http.request(method, path, headers=headers, json={"name": "intruder"})
    assert response.status_code == 401
    assert response.headers["cache-control"] == "no-store"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_api_key"
    assert ADMIN_KEY not in response.text


def test_a_stored_client_key_is_not_an_admin_key(
    admin: httpx.Client, admin_router: RouterProcess
) -> None:
    secret = create(admin)["key"]
    with admin_client(admin_router, key=secret) as http:
        response = http.get("/admin/keys")
    assert response.status_code == 401
    assert secret not in response.text


def test_admin_api_is_absent_without_an_admin_key(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    router = start_router(make_config(two_backend_models(fake_a, fake_b)))
    with admin_client(router, key=CLIENT_KEY) as http:
        for method, path in [
            ("GET", "/admin/keys"),
            ("POST", "/admin/keys"),
            ("DELETE", f"/admin/keys/{ABSENT_ID}"),
            ("PUT", "/admin/keys"),
            ("GET", "/admin"),
        ]:
            response = http.request(method, path)
            assert response.status_code == 404, (method, path)
            error = response.json()["error"]
            assert error["code"] == "admin_disabled"
            assert "no admin key is configured" in error["message"]
    # The OpenAI surface is unaffected.
    assert chat(router, CLIENT_KEY).endswith("says: Hello there")


# --- bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "name", "missing_required_parameter"),
        ({"models": ["gpt-4o"]}, "name", "missing_required_parameter"),
        ({"name": ""}, "name", "invalid_value"),
        ({"name": 7}, "name", "invalid_type"),
        ({"name": "x", "limits": {"rpm": -1}}, "limits.rpm", "invalid_value"),
        ({"name": "x", "limits": {"tpm": 1.5}}, "limits.tpm", "invalid_type"),
        ({"name": "x", "limits": {"concurrency": True}}, "limits.concurrency", "invalid_type"),
        ({"name": "x", "limits": {"rpd": 10}}, "limits.rpd", "unknown_parameter"),
        ({"name": "x", "limits": [10]}, "limits", "invalid_type"),
        ({"name": "x", "colour": "blue"}, "colour", "unknown_parameter"),
        ({"name": "x", "models": "gpt-4o"}, "models", "invalid_type"),
        ({"name": "x", "models": []}, "models", "invalid_value"),
        ({"name": "x", "models": ["gpt-4o", 4]}, "models[1]", "invalid_type"),
        ({"name": "x", "expires_at": "tomorrow"}, "expires_at", "invalid_type"),
        ({"name": "x", "expires_at": -5}, "expires_at", "invalid_value"),
    ],
)
def test_create_rejects_bad_bodies(
    admin: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    response = admin.post("/admin/keys", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["cache-control"] == "no-store"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)


@pytest.mark.parametrize("content", [b"{name: 'x'", b"", b"[1, 2]", b'"name"'])
def test_create_rejects_bodies_that_are_not_json_objects(
    admin: httpx.Client, content: bytes
) -> None:
    response = admin.post(
        "/admin/keys", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] is None  # the body itself, as OpenAI reports it


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"state": "active"}, "state"),
        ({"key": "sk-sy-mine"}, "key"),
        ({"models": None}, "models"),
        ({"name": None}, "name"),
        ({"limits": {"rpm": -2}}, "limits.rpm"),
    ],
)
def test_patch_rejects_bad_bodies(admin: httpx.Client, body: dict[str, Any], param: str) -> None:
    key_id = create(admin)["id"]
    response = admin.patch(f"/admin/keys/{key_id}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"grace_seconds": -1}, "grace_seconds"),
        ({"grace_seconds": "60"}, "grace_seconds"),
        ({"grace": 60}, "grace"),
    ],
)
def test_rotate_rejects_bad_bodies(admin: httpx.Client, body: dict[str, Any], param: str) -> None:
    key_id = create(admin)["id"]
    response = admin.post(f"/admin/keys/{key_id}/rotate", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


# --- two routers, one store ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Config sections that point two routers at one store."""
    if request.param == "sqlite":
        yield {"store": {"path": str(tmp_path / "shared" / "keys.sqlite3")}}
        return
    with RedisServer() as server:
        yield {"redis": {"url": server.url}}


def test_a_revoke_reaches_the_other_router_within_a_second(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake, shared_store: dict[str, Any]
) -> None:
    config = make_config(two_backend_models(fake_a, fake_b), admin={"key": ADMIN_KEY})
    config |= shared_store
    first, second = start_router(config), start_router(config)
    with admin_client(first) as admin:
        created = create(admin)
        secret, key_id = created["key"], created["id"]
        # The second router has the record cached: only invalidation can tell it of the revoke.
        chat(second, secret)
        list_models(second, secret)
        assert admin.delete(f"/admin/keys/{key_id}").status_code == 200
        revoked_at = time.monotonic()
    elapsed = seconds_until_raises(
        lambda: list_models(second, secret), openai.AuthenticationError, since=revoked_at
    )
    assert elapsed < PROPAGATION_BOUND
    with pytest.raises(openai.AuthenticationError):
        chat(first, secret)
    # Either router's admin API sees the one store.
    with admin_client(second) as admin:
        assert admin.get(f"/admin/keys/{key_id}").json()["state"] == "revoked"


def test_an_unreachable_store_is_a_retryable_503(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    with RedisServer() as server:
        config = make_config(
            two_backend_models(fake_a, fake_b),
            admin={"key": ADMIN_KEY},
            redis={"url": server.url},
        )
        router = start_router(config)
        with admin_client(router) as admin:
            unknown = create(admin)["key"]  # never used: not in the router's cache
            server.stop()
            for method, path in [("POST", "/admin/keys"), ("GET", "/admin/keys")]:
                response = admin.request(method, path, json={"name": "x"})
                assert response.status_code == 503, response.text
                assert response.headers["cache-control"] == "no-store"
                assert response.headers["retry-after"] == "1"
                assert response.json()["error"]["code"] == "keys_unavailable"
            # An uncached client key on the request path: the same 503, not a 401.
            response = httpx.get(
                f"{router.base_url}/models", headers={"Authorization": f"Bearer {unknown}"}
            )
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "keys_unavailable"
        # An outage is one line naming the error: no traceback, no secret.
        assert_clean(router.lines, [ADMIN_KEY, unknown.rsplit("-", 1)[1]])  # the id is public
        assert any(
            r.get("msg") == "key store unavailable" and r.get("error") for r in router.records()
        )
