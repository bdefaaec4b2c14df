"""``switchyard keys`` as a real subprocess, against the store a real router uses.

The CLI writes to the SQLite file (or Redis) named in the config; a router on the same config
sees the change through its store's invalidation, within a second.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import yaml

from tests.functional.conftest import Fake, RouterFactory, make_config, two_backend_models
from tests.functional.router_process import REPO_ROOT, RouterProcess
from tests.redis_server import RedisServer

PROPAGATION_BOUND = 1.0
POLL_DEADLINE = 5.0


class Keys:
    """``python -m router keys …`` on one config file."""

    def __init__(self, config: dict[str, Any], path: Path) -> None:
        self.config = config
        self.path = path
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "router", "keys", *args]
        if env is None:  # else the environment names the config
            command += ["--config", str(self.path)]
        return subprocess.run(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str) -> dict[str, Any]:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        output: dict[str, Any] = orjson.loads(done.stdout)
        return output


@pytest.fixture
def keys(tmp_path: Path, fake_a: Fake, fake_b: Fake) -> Keys:
    """A config whose store is a SQLite file of the test's own."""
    config = make_config(two_backend_models(fake_a, fake_b))
    config["store"] = {"path": str(tmp_path / "store" / "keys.sqlite3")}
    return Keys(config, tmp_path / "config.yaml")


def list_models(router: RouterProcess, key: str) -> list[str]:
    with openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0) as sdk:
        return [model.id for model in sdk.models.list()]


def chat(router: RouterProcess, key: str) -> str:
    with openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0) as sdk:
        reply = sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hello there"}]
        )
    return reply.choices[0].message.content or ""


def refused(router: RouterProcess, key: str) -> bool:
    """Whether the router answers the key with 401 (any other failure fails the test)."""
    try:
        list_models(router, key)
    except openai.AuthenticationError:
        return True
    return False


def seconds_until(check: Callable[[], bool], since: float) -> float:
    """Poll ``check`` until it holds; the seconds from ``since`` to then."""
    while not check():
        assert time.monotonic() - since < POLL_DEADLINE, "the router never saw the change"
        time.sleep(0.01)  # a pause between polls; the deadline above bounds the wait
    return time.monotonic() - since


def test_a_key_created_by_the_cli_opens_the_router(keys: Keys, start_router: RouterFactory) -> None:
    created = keys.ok("create", "--name", "ci", "--models", "gpt-4o, gpt-4o-mini", "--rpm", "60")
    secret = created["key"]
    assert secret.startswith(f"sk-sy-{created['id']}-")
    assert created["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert created["limits"] == {"rpm": 60, "tpm": None, "concurrency": None}

    router = start_router(keys.config)
    assert chat(router, secret).endswith("says: Hello there")
    assert sorted(list_models(router, secret)) == ["gpt-4o", "gpt-4o-mini"]

    listing = keys.run("list")
    assert listing.returncode == 0
    assert [item["id"] for item in orjson.loads(listing.stdout)["data"]] == [created["id"]]
    assert secret not in listing.stdout
    assert "hash" not in listing.stdout


def test_a_cli_revoke_reaches_a_running_router_within_a_second(
    keys: Keys, start_router: RouterFactory
) -> None:
    router = start_router(keys.config)
    created = keys.ok("create", "--name", "short-lived")
    list_models(router, created["key"])  # cached in the router from here on

    revoked = keys.ok("revoke", created["id"])
    revoked_at = time.monotonic()
    assert revoked["state"] == "revoked"
    assert "key" not in revoked
    elapsed = seconds_until(lambda: refused(router, created["key"]), revoked_at)
    assert elapsed < PROPAGATION_BOUND


def test_cli_rotate_prints_a_new_key(keys: Keys, start_router: RouterFactory) -> None:
    router = start_router(keys.config)
    created = keys.ok("create", "--name", "rotating")
    old = created["key"]
    list_models(router, old)

    rotated = keys.ok("rotate", created["id"], "--grace", "0")
    rotated_at = time.monotonic()
    new = rotated["key"]
    assert new != old
    assert new.startswith(f"sk-sy-{created['id']}-")
    elapsed = seconds_until(lambda: refused(router, old), rotated_at)
    assert elapsed < PROPAGATION_BOUND
    assert chat(router, new).endswith("says: Hello there")

    graced = keys.ok("rotate", created["id"])  # a day of grace by default
    rotated_at = time.monotonic()
    assert graced["rotation_grace_until"] > time.time() + 86000
    # The router holds the record from before the rotation until the store announces it.
    elapsed = seconds_until(lambda: not refused(router, graced["key"]), rotated_at)
    assert elapsed < PROPAGATION_BOUND
    assert not refused(router, new)  # the replaced secret, in its grace period


def test_cli_create_with_expiry(keys: Keys, start_router: RouterFactory) -> None:
    before = time.time()
    created = keys.ok("create", "--name", "temp", "--expires-in", "3600", "--concurrency", "2")
    assert before + 3600 <= created["expires_at"] <= time.time() + 3600
    assert created["limits"]["concurrency"] == 2
    expired = keys.ok("create", "--name", "gone", "--expires-in", "0")
    router = start_router(keys.config)
    assert list_models(router, created["key"])
    with pytest.raises(openai.AuthenticationError):
        list_models(router, expired["key"])


@pytest.mark.parametrize("action", ["rotate", "revoke"])
@pytest.mark.parametrize("key_id", ["aaaaaaaaaaaa", "not-an-id"])
def test_cli_unknown_id_exits_1(keys: Keys, action: str, key_id: str) -> None:
    done = keys.run(action, key_id)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no API key has" in done.stderr


def test_cli_rotate_of_a_revoked_key_exits_1(keys: Keys) -> None:
    key_id = keys.ok("create", "--name", "x")["id"]
    keys.ok("revoke", key_id)
    assert keys.ok("revoke", key_id)["state"] == "revoked"  # idempotent
    done = keys.run("rotate", key_id)
    assert done.returncode == 1
    assert "revoked" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["create"],
        ["create", "--name", " "],
        ["create", "--name", "x", "--rpm", "-1"],
        ["create", "--name", "x", "--models", ","],
        ["create", "--name", "x", "--expires-in", "soon"],
        ["rotate", "aaaaaaaaaaaa", "--grace", "-5"],
    ],
)
def test_cli_rejects_bad_options(keys: Keys, args: list[str]) -> None:
    done = keys.run(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr


def test_cli_reads_the_config_from_the_environment(keys: Keys) -> None:
    created = keys.ok("create", "--name", "from-env")
    done = keys.run("list", env={"SWITCHYARD_CONFIG": str(keys.path)})
    assert done.returncode == 0, done.stderr
    assert [item["id"] for item in orjson.loads(done.stdout)["data"]] == [created["id"]]


@pytest.fixture
def redis_keys(tmp_path: Path, fake_a: Fake, fake_b: Fake) -> Iterator[Keys]:
    """A config whose store is a private Redis."""
    with RedisServer() as server:
        config = make_config(two_backend_models(fake_a, fake_b), redis={"url": server.url})
        yield Keys(config, tmp_path / "config.yaml")


def test_cli_works_on_a_redis_store(redis_keys: Keys, start_router: RouterFactory) -> None:
    router = start_router(redis_keys.config)
    created = redis_keys.ok("create", "--name", "shared")
    assert chat(router, created["key"]).endswith("says: Hello there")
    redis_keys.ok("revoke", created["id"])
    revoked_at = time.monotonic()
    elapsed = seconds_until(lambda: refused(router, created["key"]), revoked_at)
    assert elapsed < PROPAGATION_BOUND


def test_cli_reports_an_unreachable_store(keys: Keys) -> None:
    blocked = keys.path.parent / "blocked"
    blocked.write_text("a file where the store's directory should be")
    config = {**keys.config, "store": {"path": str(blocked / "keys.sqlite3")}}
    done = Keys(config, keys.path.parent / "blocked.yaml").run("list")
    assert done.returncode == 1
    assert "key store is unavailable" in done.stderr
