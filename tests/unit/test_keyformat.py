"""Key format, generation, hashing and constant-time verification."""

import hashlib
import hmac
import re

import pytest

from router.auth import keyformat
from router.auth.keyformat import (
    format_key,
    hash_secret,
    is_key_id,
    new_key,
    new_key_id,
    new_secret,
    parse_key,
    verify,
)

VALID_ID = "abcdefgh2345"
VALID_SECRET = "A" * 20 + "-_" + "b" * 21  # 43 characters, dashes inside


def test_new_key_round_trips_through_parse():
    key_id, full_key = new_key()
    assert re.fullmatch(r"sk-sy-[a-z2-7]{12}-[A-Za-z0-9_-]{43}", full_key)
    parsed = parse_key(full_key)
    assert parsed is not None
    assert parsed[0] == key_id
    assert full_key == format_key(*parsed)


def test_keys_are_random():
    ids = {new_key_id() for _ in range(200)}
    secrets = {new_secret() for _ in range(200)}
    assert len(ids) == 200
    assert len(secrets) == 200
    assert all(is_key_id(key_id) for key_id in ids)


def test_secret_is_32_bytes_urlsafe_without_padding():
    secret = new_secret()
    assert len(secret) == keyformat.SECRET_LENGTH == 43
    assert "=" not in secret


def test_dashes_and_underscores_inside_the_secret_are_fine():
    full_key = f"sk-sy-{VALID_ID}-{VALID_SECRET}"
    assert parse_key(full_key) == (VALID_ID, VALID_SECRET)
    leading_dash = "-" + VALID_SECRET[1:]
    assert parse_key(f"sk-sy-{VALID_ID}-{leading_dash}") == (VALID_ID, leading_dash)


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "sk-sy-",
        f"sk-xx-{VALID_ID}-{VALID_SECRET}",  # wrong prefix
        f"sk-{VALID_ID}-{VALID_SECRET}",  # prefix without sy
        f"SK-SY-{VALID_ID}-{VALID_SECRET}",  # prefix is case-sensitive
        f"sk-sy-{VALID_ID[:11]}-{VALID_SECRET}",  # short id
        f"sk-sy-{VALID_ID}1-{VALID_SECRET}",  # long id ("1" is not base32 either)
        f"sk-sy-{VALID_ID.upper()}-{VALID_SECRET}",  # ids are lowercase
        f"sk-sy-{VALID_ID}",  # missing secret
        f"sk-sy-{VALID_ID}-",  # empty secret
        f"sk-sy-{VALID_ID}_{VALID_SECRET}",  # wrong separator
        f"sk-sy-{VALID_ID}-{VALID_SECRET[:-1]}",  # short secret
        f"sk-sy-{VALID_ID}-{VALID_SECRET}A",  # long secret
        f"sk-sy-{VALID_ID}-{VALID_SECRET[:-1]}=",  # padding
        f"sk-sy-{VALID_ID}-{VALID_SECRET[:-1]}\n",  # trailing newline
        f"sk-sy-{VALID_ID}-{VALID_SECRET[:-1]}é",  # non-ASCII
        f" sk-sy-{VALID_ID}-{VALID_SECRET[:-1]}",  # leading space
        "x" * 100_000,
    ],
)
def test_malformed_keys_parse_to_none(malformed):
    assert parse_key(malformed) is None


def test_parse_never_raises_on_wrong_types():
    assert parse_key(None) is None  # type: ignore[arg-type]
    assert parse_key(b"sk-sy-abc") is None  # type: ignore[arg-type]


def test_hash_is_sha256_hex_or_hmac_with_pepper():
    assert hash_secret("s3cret") == hashlib.sha256(b"s3cret").hexdigest()
    peppered = hash_secret("s3cret", b"pepper")
    assert peppered == hmac.new(b"pepper", b"s3cret", hashlib.sha256).hexdigest()
    assert peppered != hash_secret("s3cret")
    assert peppered != hash_secret("s3cret", b"other pepper")


def test_verify_matches_only_the_right_secret():
    secret = new_secret()
    stored = hash_secret(secret)
    assert verify(secret, [stored])
    assert verify(secret, ["0" * 64, stored])
    assert not verify(new_secret(), [stored])
    assert not verify(secret, [])
    assert not verify(secret, [stored.upper()])
    assert not verify(secret, ["not hex é"])  # a corrupt stored hash is a mismatch, not a crash


def test_verify_with_pepper_needs_the_same_pepper():
    secret = new_secret()
    stored = hash_secret(secret, b"pepper")
    assert verify(secret, [stored], b"pepper")
    assert not verify(secret, [stored])
    assert not verify(secret, [stored], b"other")


def test_verify_compares_every_hash_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    secret = new_secret()
    stored = hash_secret(secret)
    assert verify(secret, [stored, hash_secret("old")])
    assert len(calls) == 2  # no early exit on the first match
