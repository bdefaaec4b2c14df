"""The change feed: evict what any process changes, for as long as the store is open."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable

from router.auth.keystore import EVICT_ALL, KeyStore

log = logging.getLogger(__name__)


class ChangeFeed:
    """Calls ``evict`` with each id the store announces; ``live`` is set while it listens."""

    def __init__(self, store: KeyStore, evict: Callable[[str], None]) -> None:
        self._store = store
        self._evict = evict
        self.live = asyncio.Event()
        """Set while :meth:`run` is listening (a readiness signal)."""

    async def run(self) -> None:
        """Evict what any process changes, until the store closes; run as an owned task.

        If the store's change feed fails, it is reopened after a pause (doubling up to 5 s) so
        a broken store never spins the loop; a reopened feed starts with :data:`EVICT_ALL`.
        """
        pause = 0.1
        while True:
            try:
                await self._consume()
                return
            except Exception:
                log.exception("key change feed failed; reopening in %.1f s", pause)
            self._evict(EVICT_ALL)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    async def _consume(self) -> None:
        changes = self._store.changes()
        try:
            async for key_id in changes:
                self._evict(key_id)
                self.live.set()  # the feed yields EVICT_ALL once it listens
        finally:
            self.live.clear()
            if isinstance(changes, AsyncGenerator):
                await changes.aclose()
