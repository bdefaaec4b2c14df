"""KeyRecord: who it accepts and when, its public view, its JSON form."""

import dataclasses

import orjson
import pytest

from router.auth.keyformat import hash_secret, new_secret
from router.auth.records import KeyLimits, KeyRecord

NOW = 1_700_000_000.0
SECRET = new_secret()
OLD_SECRET = new_secret()


def record(**changes):
    base = KeyRecord(id="abcdefgh2345", name="ci", created_at=NOW, secret_hash=hash_secret(SECRET))
    return dataclasses.replace(base, **changes)


def rotated(grace_until):
    return record(previous_hash=hash_secret(OLD_SECRET), previous_expires_at=grace_until)


def test_accepts_the_current_secret_only():
    key = record()
    assert key.accepts(SECRET, NOW)
    assert not key.accepts(OLD_SECRET, NOW)
    assert not key.accepts("", NOW)


def test_revoked_accepts_nothing():
    key = dataclasses.replace(rotated(NOW + 100), state="revoked")
    assert not key.accepts(SECRET, NOW)
    assert not key.accepts(OLD_SECRET, NOW)


def test_expiry_is_exclusive():
    key = record(expires_at=NOW + 10)
    assert key.accepts(SECRET, NOW + 9.999)
    assert not key.accepts(SECRET, NOW + 10)
    assert not key.accepts(SECRET, NOW + 11)


def test_previous_secret_works_until_the_grace_ends():
    key = rotated(NOW + 60)
    assert key.accepts(OLD_SECRET, NOW)
    assert key.accepts(OLD_SECRET, NOW + 59.9)
    assert not key.accepts(OLD_SECRET, NOW + 60)
    assert key.accepts(SECRET, NOW + 60)


def test_expiry_also_ends_the_previous_secret():
    key = dataclasses.replace(rotated(NOW + 60), expires_at=NOW + 30)
    assert not key.accepts(OLD_SECRET, NOW + 30)


def test_pepper_is_part_of_the_hash():
    key = record(secret_hash=hash_secret(SECRET, b"pepper"))
    assert key.accepts(SECRET, NOW, pepper=b"pepper")
    assert not key.accepts(SECRET, NOW)


def test_public_view_has_no_hash_and_no_secret():
    key = dataclasses.replace(rotated(NOW + 60), limits=KeyLimits(rpm=60, tpm=None, concurrency=2))
    view = key.public(NOW)
    text = orjson.dumps(view).decode()
    for hidden in (SECRET, OLD_SECRET, key.secret_hash, key.previous_hash):
        assert hidden not in text
    assert "hash" not in text
    assert view == {
        "id": "abcdefgh2345",
        "object": "api_key",
        "name": "ci",
        "created_at": NOW,
        "last_used_at": None,
        "expires_at": None,
        "models": ["*"],
        "limits": {"rpm": 60, "tpm": None, "concurrency": 2},
        "priority": "default",
        "state": "active",
        "rotation_grace_until": NOW + 60,
    }


def test_public_view_shows_grace_only_while_it_lasts():
    assert "rotation_grace_until" not in record().public(NOW)
    assert "rotation_grace_until" not in rotated(NOW - 1).public(NOW)
    assert "rotation_grace_until" not in rotated(1.0).public()  # default: the current time


def test_json_round_trip():
    key = dataclasses.replace(
        rotated(NOW + 60),
        models=("gpt-4o*", "text-embedding-3-small"),
        limits=KeyLimits(rpm=10, tpm=1000, concurrency=None),
        last_used_at=NOW + 1.25,
        expires_at=NOW + 3600,
    )
    assert KeyRecord.from_json(key.to_json()) == key
    assert KeyRecord.from_json(key.to_json().decode()) == key
    revoked = dataclasses.replace(key, state="revoked")
    assert KeyRecord.from_json(revoked.to_json()) == revoked
    assert orjson.loads(key.to_json())["v"] == 1


@pytest.mark.parametrize(
    "malformed",
    [
        b"",
        b"not json",
        b"[]",
        b"{}",
        b'{"id": "x", "name": "n", "created_at": "yesterday", "secret_hash": "h"}',
        b'{"id": "x", "name": "n", "created_at": 1, "secret_hash": "h", "models": "*"}',
        b'{"id": "x", "name": "n", "created_at": 1, "secret_hash": "h", "state": "paused"}',
        b'{"id": "x", "name": "n", "created_at": 1, "secret_hash": "h", "limits": {"rpm": -1}}',
        b'{"id": "x", "name": "n", "created_at": 1, "secret_hash": "h", "limits": {"x": 1}}',
        b'{"id": "x", "name": "", "created_at": 1, "secret_hash": "h"}',
    ],
)
def test_malformed_json_raises_value_error(malformed):
    with pytest.raises(ValueError, match=r"malformed key record|limits|state|name"):
        KeyRecord.from_json(malformed)


def test_records_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        record().name = "other"


@pytest.mark.parametrize("bad", [{"rpm": -1}, {"tpm": 1.5}, {"concurrency": True}])
def test_limits_must_be_non_negative_integers(bad):
    with pytest.raises(ValueError, match="limits"):
        KeyLimits(**bad)


@pytest.mark.parametrize(
    "bad",
    [
        {"name": ""},
        {"created_at": None},
        {"expires_at": "tomorrow"},
        {"last_used_at": True},
        {"models": ["gpt-4o"]},  # a tuple, so records stay hashable and frozen
        {"state": "paused"},
    ],
)
def test_invalid_fields_are_rejected(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        record(**bad)


def test_updated_changes_only_admin_fields():
    key = record(limits=KeyLimits(rpm=1, tpm=2))
    changed = key.updated(name="new", models="gpt-4o", tpm=20, expires_at=NOW + 1)
    assert (changed.name, changed.models, changed.expires_at) == ("new", ("gpt-4o",), NOW + 1)
    assert changed.limits == KeyLimits(rpm=1, tpm=20)
    assert key.updated(limits={"concurrency": 4}).limits == KeyLimits(concurrency=4)
    assert key.updated(models=["a*", "b"]).models == ("a*", "b")
    for forbidden in ("secret_hash", "previous_hash", "state", "id", "created_at"):
        with pytest.raises(ValueError, match=forbidden):
            key.updated(**{forbidden: "x"})
    with pytest.raises(ValueError, match="limits"):
        key.updated(limits=5)
