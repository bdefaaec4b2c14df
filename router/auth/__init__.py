"""Client authentication: from a presented key to a :class:`Principal`."""

from router.auth.keys import KeyRing, Principal, bearer_token

__all__ = ["KeyRing", "Principal", "bearer_token"]
