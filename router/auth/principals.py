"""From a presented key to a :class:`Principal`: config keys and stored keys side by side.

Stored keys (``sk-sy-<id>-<secret>``) are checked by the :class:`KeyService` (cached records,
hashed secrets, rotation grace, revocation); any other key is looked up among the config keys.
"""

from __future__ import annotations

from router.auth.keyformat import parse_key
from router.auth.keys import KeyRing, Principal
from router.auth.records import KeyRecord
from router.auth.service import KeyService

_MAX_PRINCIPALS = 10_000


def principal_of(record: KeyRecord) -> Principal:
    return Principal(record.id, record.name, record.models, record.limits, record.priority)


class Authenticator:
    """The one question the request path asks: who holds this key?"""

    def __init__(self, ring: KeyRing, service: KeyService) -> None:
        self.ring = ring
        self.service = service
        # key id -> (the record it was built from, the principal): rebuilt when the record
        # object changes (the service caches records, so unchanged keys reuse their principal).
        self._principals: dict[str, tuple[KeyRecord, Principal]] = {}

    async def principal(self, token: str) -> Principal | None:
        """The key's principal, or None for an unknown, expired or revoked key.

        Raises whatever the store raises for a key not cached yet (the caller answers 503).
        """
        if parse_key(token) is None:
            return self.ring.lookup(token)
        record = await self.service.authenticate(token)
        if record is None:
            return None
        cached = self._principals.get(record.id)
        if cached is not None and cached[0] is record:
            return cached[1]
        principal = principal_of(record)
        if len(self._principals) >= _MAX_PRINCIPALS:
            self._principals.clear()
        self._principals[record.id] = (record, principal)
        return principal

    def __repr__(self) -> str:
        return f"<Authenticator {self.ring!r} {self.service!r}>"
