"""What a store keeps per API key, and its JSON form.

A record holds hashes only, never a secret. :meth:`KeyRecord.public` is the view an admin API or
the web page may show: it has no hash at all, so a leaked listing reveals nothing checkable.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import orjson

from balancers.fairqueue import DEFAULT_PRIORITY, PRIORITIES, Priority
from router.auth.keyformat import is_key_id, verify
from router.limits.types import Limits

UPDATABLE = frozenset(
    {"name", "models", "expires_at", "limits", "rpm", "tpm", "concurrency", "priority"}
)
LIMIT_FIELDS = ("rpm", "tpm", "concurrency")

KeyState = Literal["active", "revoked"]
STATES: tuple[KeyState, ...] = ("active", "revoked")
FORMAT_VERSION = 1


KeyLimits = Limits
"""A key's limits are the limiter's :class:`~router.limits.Limits`: one definition."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    """One API key as stored: identity, policy, state and the hashes of its secrets.

    ``previous_hash`` is the secret replaced by the last rotation; it keeps working until
    ``previous_expires_at`` so clients can be redeployed without an outage.

    ``version`` counts the writes (the :class:`~router.auth.service.KeyService` bumps it) and
    ``updated_at`` is the time of the last one: with them, two copies of a record can be
    merged without rolling one back (:func:`newest`).
    """

    id: str
    name: str
    created_at: float
    secret_hash: str
    last_used_at: float | None = None
    expires_at: float | None = None
    models: tuple[str, ...] = ("*",)
    limits: KeyLimits = field(default_factory=KeyLimits)
    state: KeyState = "active"
    previous_hash: str | None = None
    previous_expires_at: float | None = None
    version: int = 0
    updated_at: float | None = None
    # Its class in a pool's wait queue. Records written before priorities existed read as
    # the default: a new field, so old snapshots, exports and Redis copies stay valid.
    priority: Priority = DEFAULT_PRIORITY

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("name: expected a non-empty string")
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 0:
            raise ValueError("version: expected an integer, 0 or more")
        times = ("created_at", "last_used_at", "expires_at", "previous_expires_at", "updated_at")
        for name in times:
            value = getattr(self, name)
            if not (_is_number(value) or (value is None and name != "created_at")):
                raise ValueError(f"{name}: expected a unix time")
        if not isinstance(self.models, tuple) or not all(isinstance(m, str) for m in self.models):
            raise ValueError("models: expected a tuple of strings")
        if self.state not in STATES:
            raise ValueError(f"state: expected one of {', '.join(STATES)}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority: expected one of {', '.join(PRIORITIES)}")

    def previous_valid(self, now: float) -> bool:
        """Whether the pre-rotation secret is still accepted at ``now``."""
        return (
            self.previous_hash is not None
            and self.previous_expires_at is not None
            and now < self.previous_expires_at
        )

    def accepts(self, secret: str, now: float, *, pepper: bytes | None = None) -> bool:
        """Whether ``secret`` opens this key at ``now``: active, unexpired, a current hash."""
        if self.state != "active":
            return False
        if self.expires_at is not None and now >= self.expires_at:
            return False
        hashes = [self.secret_hash]
        if self.previous_valid(now):
            hashes.append(cast(str, self.previous_hash))
        return verify(secret, hashes, pepper)

    def public(self, now: float | None = None) -> dict[str, Any]:
        """The JSON-able view for admins: no hash, no secret.

        ``rotation_grace_until`` appears while the previous secret still works at ``now``
        (default: the current time).
        """
        now = time.time() if now is None else now
        view: dict[str, Any] = {
            "id": self.id,
            "object": "api_key",
            "name": self.name,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "expires_at": self.expires_at,
            "models": list(self.models),
            "limits": self.limits.to_dict(),
            "priority": self.priority,
            "state": self.state,
        }
        if self.previous_valid(now):
            view["rotation_grace_until"] = self.previous_expires_at
        return view

    def updated(self, **fields: Any) -> KeyRecord:
        """A copy with admin-editable fields changed: ``name``, ``models``, ``expires_at``,
        ``priority``, and
        ``limits`` (a :class:`KeyLimits` or mapping) or ``rpm``/``tpm``/``concurrency`` alone.

        Raises ValueError for any other field (hashes and state have their own operations).
        """
        unknown = fields.keys() - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
        limits = fields.pop("limits", self.limits)
        if isinstance(limits, Mapping):
            limits = KeyLimits(**limits)
        if not isinstance(limits, KeyLimits):
            raise ValueError("limits: expected an object with rpm, tpm, concurrency")
        changed_limits = {name: fields.pop(name) for name in LIMIT_FIELDS if name in fields}
        fields["limits"] = dataclasses.replace(limits, **changed_limits)
        if "models" in fields:
            fields["models"] = patterns(fields["models"])
        return dataclasses.replace(self, **fields)

    def to_dict(self) -> dict[str, Any]:
        """The stored form as a JSON-able dict (includes hashes; never send it to a client)."""
        data = dataclasses.asdict(self)
        data["models"] = list(self.models)
        data["v"] = FORMAT_VERSION
        return data

    def to_json(self) -> bytes:
        """The stored form (includes hashes; never send it to a client)."""
        # A shallow dict: orjson writes the tuple and the limits dataclass itself, about six
        # times faster than dataclasses.asdict (which deep-copies), for a restore of many keys.
        data = {name: getattr(self, name) for name in _FIELD_NAMES}
        data["v"] = FORMAT_VERSION
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, data: bytes | str) -> KeyRecord:
        """Parse :meth:`to_json` output; raise ValueError on anything malformed."""
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"malformed key record: {exc!r}") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: object) -> KeyRecord:
        """Parse :meth:`to_dict` output (from a file, say); raise ValueError if malformed."""
        try:
            if not isinstance(raw, dict):
                raise TypeError("not an object")
            record = cls._from_dict(raw)
        except (TypeError, KeyError) as exc:
            raise ValueError(f"malformed key record: {exc!r}") from None
        if not is_key_id(record.id):  # ids become store key names: only the generated shape
            raise ValueError("malformed key record: id is not a key id")
        return record

    @classmethod
    def _from_dict(cls, raw: dict[str, Any]) -> KeyRecord:
        return cls(
            id=_str(raw["id"]),
            name=_str(raw["name"]),
            created_at=_number(raw["created_at"]),
            secret_hash=_str(raw["secret_hash"]),
            last_used_at=_optional_number(raw.get("last_used_at")),
            expires_at=_optional_number(raw.get("expires_at")),
            models=_strings(raw.get("models", ["*"])),
            limits=KeyLimits(**raw.get("limits") or {}),
            state=cast(KeyState, raw.get("state", "active")),
            previous_hash=_optional_str(raw.get("previous_hash")),
            previous_expires_at=_optional_number(raw.get("previous_expires_at")),
            version=_int(raw.get("version", 0)),
            updated_at=_optional_number(raw.get("updated_at")),
            priority=cast(Priority, raw.get("priority", DEFAULT_PRIORITY)),
        )

    @property
    def rank(self) -> tuple[bool, int, float]:
        """What :func:`newest` compares: revoked first, then the version, then the write time."""
        updated = self.created_at if self.updated_at is None else self.updated_at
        return (self.state == "revoked", self.version, updated)

    def written(self, now: float) -> KeyRecord:
        """The copy a store write keeps: the next version, written at ``now``."""
        return dataclasses.replace(self, version=self.version + 1, updated_at=now)


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(KeyRecord))


def newest(current: KeyRecord | None, incoming: KeyRecord) -> KeyRecord:
    """Which of two copies of one key a merge keeps: the higher :attr:`KeyRecord.rank`.

    Revocation wins (a revoked key never comes back, whatever the versions), then the newer
    version, then the later write; a tie keeps ``current``. The rule is a join (commutative,
    associative, idempotent), so snapshots, stores and backups can be merged in any order, any
    number of times, and agree: the same rule as a CRDT's last-writer-wins register with a
    tombstone that always wins (Shapiro et al., 2011).
    """
    if current is None or incoming.rank > current.rank:
        return incoming
    return current


def patterns(models: Iterable[str]) -> tuple[str, ...]:
    """Model patterns as a tuple; a lone string is one pattern, not one per letter."""
    return (models,) if isinstance(models, str) else tuple(models)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _optional_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> float:
    if not _is_number(value):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _optional_number(value: Any) -> float | None:
    return None if value is None else _number(value)


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("expected a list of strings")
    return tuple(_str(item) for item in value)
