"""Client keys: lookup by hash, never by the secret itself.

The ring keeps only SHA-256 digests of the keys, so a heap dump or a stray ``repr`` holds no
secret. A lookup hashes the presented key and probes a dict: the timing depends on the digest,
which an attacker cannot steer toward a stored one, so no secret leaks through timing either
(the same reasoning as GitHub's and Stripe's hashed token tables).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from fnmatch import fnmatchcase

from balancers.fairqueue import DEFAULT_PRIORITY, Priority
from router.auth.keyformat import parse_key
from router.config import KeyConfig
from router.limits import Limits

NO_LIMITS = Limits()


class Principal:
    """Who is calling: the key's public identity and what it may use."""

    __slots__ = (
        "_allowed",
        "key_id",
        "limits",
        "name",
        "patterns",
        "priority",
        "unlimited",
        "unrestricted",
    )

    def __init__(
        self,
        key_id: str,
        name: str,
        patterns: Iterable[str],
        limits: Limits | None = None,
        priority: Priority = DEFAULT_PRIORITY,
    ) -> None:
        self.key_id = key_id
        self.name = name
        self.limits = limits or NO_LIMITS
        self.unlimited = self.limits.empty  # read per request: an attribute, not a property
        self.priority = priority  # its class in a pool's wait queue
        self.patterns = tuple(patterns)
        self.unrestricted = "*" in self.patterns
        self._allowed: dict[str, bool] = {}

    def allows(self, model: str) -> bool:
        """Whether this key may use ``model`` (globs as in ``gpt-4o*``); memoised per model."""
        if self.unrestricted:
            return True
        allowed = self._allowed.get(model)
        if allowed is None:
            allowed = any(fnmatchcase(model, pattern) for pattern in self.patterns)
            if len(self._allowed) < 4096:  # bounded: model names come from clients
                self._allowed[model] = allowed
        return allowed

    def __repr__(self) -> str:
        return f"<Principal {self.key_id} {self.name!r} models={list(self.patterns)}>"


def digest(key: str) -> bytes:
    """SHA-256 of the key's bytes. A key read from a header may not be text: aiohttp decodes
    header bytes as UTF-8 with ``surrogateescape``, which encodes back to the bytes sent."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class KeyRing:
    """The keys the router accepts, indexed by digest."""

    def __init__(self, keys: Iterable[KeyConfig]) -> None:
        # Keys in the stored keys' format are left out: such a token always goes to the key
        # service, so a digest found here is a config key whatever the token looks like.
        self.by_digest: dict[bytes, Principal] = {}
        for key in keys:
            secret = key.key.get_secret_value()
            if parse_key(secret) is not None:
                continue
            hashed = digest(secret)
            # A loggable id from the key's config name, never from the secret's characters.
            key_id = f"cfg-{key.name}"
            limits = Limits(key.limits.rpm, key.limits.tpm, key.limits.concurrency)
            principal = Principal(key_id, key.name, key.models, limits, key.priority)
            self.by_digest[hashed] = principal

    def lookup(self, key: str) -> Principal | None:
        return self.by_digest.get(digest(key))

    def __len__(self) -> int:
        return len(self.by_digest)

    def __repr__(self) -> str:
        return f"<KeyRing {len(self)} keys>"


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
