"""The API key format: ``sk-sy-<id>-<secret>``, and how secrets are hashed and checked.

- ``id``: 12 characters of lowercase base32 (``a-z2-7``, 60 random bits). It is public: shown in
  the key list, logged, used in URLs and in store key names, so a key can be named without
  revealing it.
- ``secret``: 32 random bytes, URL-safe base64 without padding (43 characters). It may contain
  ``-`` and ``_``, so a key is parsed by position (prefix, 12 id characters, ``-``, the rest),
  never by splitting on ``-``.

Only a hash of the secret is stored. The secret is 256 random bits, so a fast hash (SHA-256,
optionally keyed with a server-side pepper) is enough: a slow password hash (bcrypt, scrypt,
argon2) protects low-entropy human passwords from guessing, and there is nothing to guess here.
This is how GitHub and Stripe treat their API tokens (random, high-entropy, stored as a fast
digest), and it keeps authentication at about a microsecond per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

PREFIX = "sk-sy-"
ID_LENGTH = 12
SECRET_BYTES = 32
SECRET_LENGTH = 43  # len(base64.urlsafe_b64encode(32 bytes)) without the "=" padding

_KEY = re.compile(rf"sk-sy-([a-z2-7]{{{ID_LENGTH}}})-([A-Za-z0-9_-]{{{SECRET_LENGTH}}})")
_ID = re.compile(rf"[a-z2-7]{{{ID_LENGTH}}}")
_MAX_KEY_LENGTH = len(PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH


def new_key_id() -> str:
    """A fresh random key id (12 lowercase base32 characters)."""
    raw = secrets.token_bytes(8)  # 64 bits, of which the first 60 are used
    return base64.b32encode(raw).decode("ascii")[:ID_LENGTH].lower()


def new_secret() -> str:
    """A fresh secret: 32 random bytes, URL-safe base64 without padding."""
    return secrets.token_urlsafe(SECRET_BYTES)


def format_key(key_id: str, secret: str) -> str:
    """The full key a client presents: ``sk-sy-<id>-<secret>``."""
    return f"{PREFIX}{key_id}-{secret}"


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, full_key)``; show the full key once and store only its hash."""
    key_id = new_key_id()
    return key_id, format_key(key_id, new_secret())


def is_key_id(value: str) -> bool:
    """Whether ``value`` has the shape of a key id (safe to use in store key names)."""
    return _ID.fullmatch(value) is not None


def parse_key(full_key: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, or None for anything else (never raises)."""
    if not isinstance(full_key, str) or len(full_key) != _MAX_KEY_LENGTH:
        return None
    match = _KEY.fullmatch(full_key)
    if match is None:
        return None
    return match.group(1), match.group(2)


def hash_secret(secret: str, pepper: bytes | None = None) -> str:
    """Hex SHA-256 of the secret, or HMAC-SHA-256 keyed with ``pepper`` when one is given.

    A pepper (kept in the server's config, not in the store) means a stolen store alone does not
    even allow checking a guessed secret.
    """
    data = secret.encode("utf-8")
    if pepper is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(pepper, data, hashlib.sha256).hexdigest()


def verify(secret: str, hashes: Iterable[str], pepper: bytes | None = None) -> bool:
    """Whether ``secret`` matches any of ``hashes``, comparing each in constant time.

    Every stored hash is compared (no early exit), so the time does not tell which one matched.
    """
    presented = hash_secret(secret, pepper).encode("ascii")
    matched = False
    for stored in hashes:
        matched |= hmac.compare_digest(presented, stored.encode("utf-8"))
    return matched
