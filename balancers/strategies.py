"""Balancing strategies, picked by name from :data:`STRATEGIES` (as uvicorn's ``config.py`` maps
names to implementations).

A strategy only chooses among the candidates the :class:`~balancers.pool.Pool` hands it (already
filtered for exclusion, health, saturation and quota), so each one is a few lines of arithmetic.
Every ``pick`` is O(n) in the candidates and allocates nothing.

Headroom: a backend whose account reports its quota (``BackendState.quota``) counts for the
predicted fraction of that quota left: ``weighted`` scales its weight by it, ``least-latency``
and ``least-inflight`` divide its load by it. Traffic so shifts away from an account as it
nears its limit, smoothly, instead of only once it refuses. A backend without a quota counts
in full (fraction 1.0, one attribute test).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from balancers.state import BackendState


class Strategy(Protocol):
    """Chooses one backend from a non-empty sequence of candidates."""

    name: str

    def pick(self, candidates: Sequence[BackendState], now: float) -> BackendState:
        """Return one of ``candidates`` (never empty) for a request starting at ``now``."""
        ...


class LeastLatency:
    """Power of two choices over peak-EWMA load, as Finagle's ``P2CPeakEwma`` and Linkerd.

    Comparing two random candidates instead of scanning for the global minimum avoids herding
    every request onto the one backend that looked best a moment ago (Mitzenmacher, "The Power
    of Two Choices in Randomized Load Balancing").
    """

    name = "least-latency"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, candidates: Sequence[BackendState], now: float) -> BackendState:
        """Draw two distinct candidates at random; return the one with the lower load."""
        n = len(candidates)
        if n == 1:
            return candidates[0]
        i = self._rng.randrange(n)
        j = self._rng.randrange(n - 1)
        if j >= i:  # skip i so the pair is distinct and uniform over the other n - 1
            j += 1
        a, b = candidates[i], candidates[j]
        # Ties go to the first draw, as tower's p2c does; the draw itself is random.
        return a if _scaled_load(a, now) <= _scaled_load(b, now) else b

    def __repr__(self) -> str:
        return f"<LeastLatency {self.name}>"


class Weighted:
    """nginx's smooth weighted round-robin (``ngx_http_upstream_get_peer``).

    Each pick adds every candidate's weight to its running ``current``, picks the largest and
    subtracts the candidates' total weight from it. Over ``sum(weights)`` picks each backend gets
    exactly its weight, interleaved (5,1,1 gives a a b a c a a, not a a a a a b c). ``current``
    is kept per backend name so excluded or ejected backends keep their place when they return.
    """

    name = "weighted"

    def __init__(self) -> None:
        self._current: dict[str, float] = {}

    def pick(self, candidates: Sequence[BackendState], now: float) -> BackendState:
        """Return the candidate with the largest running weight, then charge it the total."""
        current = self._current
        total = 0.0
        best = candidates[0]
        best_current: float | None = None
        for backend in candidates:
            weight: float = backend.weight
            if backend.quota is not None:
                weight *= backend.quota.fraction(now)
            value = current.get(backend.name, 0) + weight
            current[backend.name] = value
            total += weight
            if best_current is None or value > best_current:
                best, best_current = backend, value
        current[best.name] -= total
        return best

    def __repr__(self) -> str:
        return f"<Weighted {self.name} current={self._current}>"


class RoundRobin:
    """Plain rotation over the candidates: a counter modulo their number."""

    name = "round-robin"

    def __init__(self) -> None:
        self._next = 0

    def pick(self, candidates: Sequence[BackendState], now: float) -> BackendState:
        """Return the next candidate in turn."""
        chosen = candidates[self._next % len(candidates)]
        self._next += 1
        return chosen

    def __repr__(self) -> str:
        return f"<RoundRobin {self.name} next={self._next}>"


class LeastInflight:
    """Fewest requests in flight per unit of weight; ties broken at random.

    The rng breaks ties so that an idle pool does not send every request to the first backend.
    """

    name = "least-inflight"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, candidates: Sequence[BackendState], now: float) -> BackendState:
        """Return a candidate minimising ``inflight / weight``."""
        best = candidates[0]
        ties = 1
        for i in range(1, len(candidates)):
            backend = candidates[i]
            # Cross-multiplied so the comparison is exact integer arithmetic (without quotas).
            lhs = backend.inflight * _share(best, now)
            rhs = best.inflight * _share(backend, now)
            if lhs < rhs:
                best, ties = backend, 1
            elif lhs == rhs:
                # Reservoir sampling: the k-th tie wins with probability 1/k, so every tied
                # backend is equally likely without collecting them in a list.
                ties += 1
                if self._rng.randrange(ties) == 0:
                    best = backend
        return best

    def __repr__(self) -> str:
        return f"<LeastInflight {self.name}>"


def _share(backend: BackendState, now: float) -> float:
    """The backend's weight, scaled by the share of its account's quota left."""
    if backend.quota is None:
        return backend.weight
    return backend.weight * backend.quota.fraction(now)


def _scaled_load(backend: BackendState, now: float) -> float:
    """The backend's load, divided by the share of its account's quota left (a backend that
    is out counts as infinitely loaded)."""
    load = backend.load(now)
    if backend.quota is None:
        return load
    fraction = backend.quota.fraction(now)
    return load / fraction if fraction > 0.0 else math.inf


STRATEGIES: Mapping[str, Callable[[random.Random], Strategy]] = MappingProxyType(
    {
        LeastLatency.name: LeastLatency,
        Weighted.name: lambda _rng: Weighted(),
        RoundRobin.name: lambda _rng: RoundRobin(),
        LeastInflight.name: LeastInflight,
    }
)
"""Strategy factories by the name config uses; each takes the injected ``random.Random``."""


def make_strategy(name: str, rng: random.Random) -> Strategy:
    """Build the strategy called ``name``; ``ValueError`` lists the valid names otherwise."""
    try:
        factory = STRATEGIES[name]
    except KeyError:
        valid = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown balancing strategy {name!r}; valid: {valid}") from None
    return factory(rng)
