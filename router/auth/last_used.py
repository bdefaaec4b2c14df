"""When each key was last used: noted on every authentication, written to the store in batches.

A store write per request would put the store on the hot path; a dict of pending times costs a
store round trip every few seconds instead (GitHub's token ``last_used`` is as coarse).
"""

from __future__ import annotations

from router.auth.keystore import KeyStore


class LastUsed:
    """Pending last-use times, flushed by an owned task (``router.resources``)."""

    __slots__ = ("_pending", "_store")

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._pending: dict[str, float] = {}

    def note(self, key_id: str, at: float) -> None:
        """``key_id`` authenticated at ``at`` (wall clock)."""
        self._pending[key_id] = at

    async def flush(self) -> None:
        """Write pending last-use times to the store in one batch (call every few seconds).

        On failure the times stay pending for the next flush, and the error propagates."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            await self._store.touch(pending)
        except BaseException:
            for key_id, at in pending.items():  # keep them for the next flush
                self._pending[key_id] = max(at, self._pending.get(key_id, at))
            raise

    def __len__(self) -> int:
        return len(self._pending)
