"""Prompt-cache affinity: consistent hashing with bounded loads.

Requests that share a cache key should reach the same backend, where the provider's prompt
cache (or vLLM's and SGLang's prefix cache) holds their prefix. A plain hash ring does that, and
moves only the keys of a backend that leaves or joins (Karger et al., and Ketama's 160 points per
server). A plain ring also lets one hot key (or an unlucky spread of keys) overload its backend;
Mirrokni, Thorup and Zadimoghaddam's *Consistent Hashing with Bounded Loads* (Google, 2017;
Vimeo's and Envoy's ring-hash with a load bound) caps every backend at ``balance`` times the
average load: a key whose backend is full walks the ring to the next one that has room, and the
keys that move are the hot ones, to a place that is again consistent for them.

Load is requests in flight (the :class:`~balancers.state.BackendState` counter, per router
process). Backends are weighted: points on the ring and capacity both scale with ``weight``.

``Ring.pick`` is pure and allocates nothing: a bisect over the points, then at most one step per
backend along a precomputed list of distinct successors.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Container, Sequence

from balancers.state import BackendState

POINTS_PER_WEIGHT = 160
"""Ring points per unit of weight: Ketama's 160 per server keeps the spread within a few %."""
BALANCE = 1.25
"""The load bound ``c``: no backend above ``c`` times its share of the load in flight (+1).
1.25 is the paper's and Vimeo's production choice: a modest bound moves few keys."""


def key_hash(data: bytes) -> int:
    """A 64-bit hash of a cache key, the same in every process and host (not ``hash()``,
    which is salted per process)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class Ring:
    """A hash ring over one pool's backends."""

    __slots__ = (
        "_points",
        "_successors",
        "backends",
        "balance",
        "hits",
        "last_hit",
        "misses",
        "weight",
    )

    def __init__(
        self,
        backends: Sequence[BackendState],
        *,
        balance: float = BALANCE,
        points_per_weight: int = POINTS_PER_WEIGHT,
    ) -> None:
        if balance < 1.0:
            raise ValueError("balance must be at least 1")
        self.backends = tuple(backends)
        self.balance = balance
        self.weight = sum(b.weight for b in self.backends)
        ring = sorted(
            (key_hash(f"{backend.name}#{point}".encode()), index)
            for index, backend in enumerate(self.backends)
            for point in range(backend.weight * points_per_weight)
        )
        self._points = [point for point, _ in ring]
        owners = [index for _, index in ring]
        self._successors = _successors(owners, len(self.backends))
        self.hits = 0
        self.misses = 0
        self.last_hit = False  # whether the last pick was the key's owner

    def owner(self, key: int) -> BackendState:
        """The backend a key belongs to when every backend can take it."""
        return self.backends[self._successors[self._slot(key)][0]]

    def pick(self, key: int, candidates: Container[BackendState]) -> BackendState | None:
        """The first backend clockwise from ``key`` that is a candidate and under its bound;
        None if none is (the pool's strategy then chooses). Counts a hit when that is the key's
        owner, a miss otherwise."""
        backends = self.backends
        inflight = 0
        for backend in backends:
            inflight += backend.inflight
        # Each backend's capacity is ceil(c * (load + 1) * weight / total weight): the paper's
        # ceil(c * m / n), the +1 being the request now placed.
        share = self.balance * (inflight + 1) / self.weight
        successors = self._successors[self._slot(key)]
        for index in successors:
            backend = backends[index]
            if backend in candidates and backend.inflight < math.ceil(share * backend.weight):
                self.last_hit = hit = index == successors[0]
                if hit:
                    self.hits += 1
                else:
                    self.misses += 1
                return backend
        self.last_hit = False
        self.misses += 1
        return None

    def _slot(self, key: int) -> int:
        slot = bisect.bisect_left(self._points, key)
        return slot if slot < len(self._points) else 0

    def __repr__(self) -> str:
        names = ", ".join(b.name for b in self.backends)
        return f"<Ring [{names}] {len(self._points)} points hits={self.hits} misses={self.misses}>"


def _successors(owners: list[int], count: int) -> list[tuple[int, ...]]:
    """For each point, the distinct backends met walking clockwise from it (the first is the
    point's owner). Built in two passes backwards round the ring: O(points * backends)."""
    size = len(owners)
    result: list[tuple[int, ...]] = [()] * size
    following: tuple[int, ...] = ()
    for step in range(2 * size - 1, -1, -1):
        owner = owners[step % size]
        following = (owner, *(i for i in following if i != owner))[:count]
        if step < size:
            result[step] = following
    return result
