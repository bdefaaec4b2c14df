"""``switchyard keys export`` and ``keys import`` as real subprocesses: a backup that restores.

Export from one store, import into another (SQLite or Redis), and the keys open a router on
the second; importing again changes nothing, and an old backup never un-revokes a key.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.functional.conftest import Fake, RouterFactory, make_config, two_backend_models
from tests.functional.test_keys_cli import Keys, list_models, refused
from tests.redis_server import RedisServer


@pytest.fixture
def stores(tmp_path: Path, fake_a: Fake, fake_b: Fake) -> Iterator[tuple[Keys, Keys]]:
    """Two configs on different stores: a SQLite file, and a private Redis."""
    models = two_backend_models(fake_a, fake_b)
    first = make_config(models, store={"path": str(tmp_path / "a" / "keys.sqlite3")})
    with RedisServer() as server:
        second = make_config(models, redis={"url": server.url})
        second["store"] = {"path": str(tmp_path / "b" / "keys.sqlite3")}
        yield Keys(first, tmp_path / "a.yaml"), Keys(second, tmp_path / "b.yaml")


@pytest.mark.parametrize("form", ["jsonl", "json"])
def test_export_then_import_into_another_store(
    stores: tuple[Keys, Keys], start_router: RouterFactory, tmp_path: Path, form: str
) -> None:
    source, target = stores
    kept = source.ok("create", "--name", "kept")
    rotated = source.ok("rotate", kept["id"], "--grace", "0")
    gone = source.ok("create", "--name", "gone")
    source.ok("revoke", gone["id"])
    backup = tmp_path / f"keys.{form}"
    done = source.run("export", "--format", form, "--output", str(backup))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    text = backup.read_text()
    for secret in (kept["key"], rotated["key"], gone["key"]):
        assert secret.rsplit("-", 1)[-1] not in text  # hashes only, never a secret

    assert target.ok("import", str(backup)) == {"object": "import", "records": 2, "written": 2}
    assert target.ok("import", str(backup))["written"] == 0  # idempotent
    router = start_router(target.config)
    assert "gpt-4o" in list_models(router, rotated["key"])
    assert refused(router, kept["key"])  # the secret replaced without grace stays dead
    assert refused(router, gone["key"])
    listed = {key["id"]: key["state"] for key in target.ok("list")["data"]}
    assert listed == {kept["id"]: "active", gone["id"]: "revoked"}


def test_an_old_backup_never_brings_a_revoked_key_back(stores: tuple[Keys, Keys]) -> None:
    source, _ = stores
    key = source.ok("create", "--name", "k")
    done = source.run("export")  # JSON lines on stdout
    assert done.returncode == 0, done.stderr
    backup = source.path.parent / "before-revoke.jsonl"
    backup.write_text(done.stdout)
    assert orjson.loads(done.stdout.splitlines()[0])["state"] == "active"
    source.ok("revoke", key["id"])
    assert source.ok("import", str(backup))["written"] == 0
    assert [k["state"] for k in source.ok("list")["data"]] == ["revoked"]


def test_import_refuses_a_malformed_file_whole(stores: tuple[Keys, Keys]) -> None:
    source, target = stores
    source.ok("create", "--name", "k")
    lines = source.run("export").stdout + "not a record\n"
    backup = source.path.parent / "broken.jsonl"
    backup.write_text(lines)
    done = target.run("import", str(backup))
    assert done.returncode == 1
    assert "line 2" in done.stderr
    assert "nothing imported" in done.stderr
    assert target.ok("list")["data"] == []
