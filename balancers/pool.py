"""A named group of interchangeable backends and the one decision the router asks of it.

``Pool.pick`` runs once per proxied request, synchronously, in the manner of httpcore's
``_assign_requests_to_connections``: it reads state and the injected clock and returns a
decision. It never calls ``begin()``; the router does, next to the ``finally`` that calls
``end()``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence

from balancers.affinity import Ring
from balancers.health import Health
from balancers.state import BackendState
from balancers.strategies import Strategy

HEALTHY = Health.HEALTHY

Clock = Callable[[], float]
"""Monotonic seconds; injected so tests drive time by hand."""


class Pool:
    """Backends serving one model, and the strategy that chooses among them."""

    __slots__ = ("backends", "clock", "name", "ring", "strategy")

    def __init__(
        self,
        name: str,
        strategy: Strategy,
        backends: Sequence[BackendState],
        *,
        clock: Clock,
        ring: Ring | None = None,
    ) -> None:
        if not backends:
            raise ValueError(f"pool {name!r} has no backends")
        names = [backend.name for backend in backends]
        if len(set(names)) != len(names):
            # Strategies such as Weighted keep per-backend state by name.
            raise ValueError(f"pool {name!r} has duplicate backend names: {names}")
        self.name = name
        self.strategy = strategy
        self.backends = tuple(backends)
        self.clock = clock
        self.ring = ring  # prompt-cache affinity (balancers.affinity); None: off

    def pick(
        self,
        exclude: Container[BackendState] = (),
        *,
        tokens: int = 0,
        affinity: int | None = None,
    ) -> BackendState | None:
        """Choose a backend for the next request (or retry), or None if none may take it.

        With ``affinity`` (a cache key's hash) and a ring, the candidate the key belongs to is
        preferred (:class:`~balancers.affinity.Ring`): never one the pool would not choose.

        Preference, in order: ready and below ``max_inflight``; ready at all (saturation only
        means the connection pool queues). A chosen backend that is not HEALTHY becomes
        PROBING, so it carries exactly one request until that one reports. A backend whose
        cooldown has not ended is never chosen, even when nothing else is left: during an
        outage the cooldown is what keeps traffic off the dead backends (Envoy's outlier
        detection likewise sends nothing to an ejected host; it fails the request with
        "no healthy upstream" instead). The caller answers None at once (:meth:`retry_in`).

        A backend whose account is predicted to lack room for one more request of ``tokens``
        estimated tokens (:class:`~balancers.quota.Quota`) is not a candidate either: its
        refusal is certain, another account's answer is not (:meth:`quota_wait` says how long
        until one has room). The chosen account is charged the request at once, so the next
        pick sees it before the answer does.
        """
        now = self.clock()
        # ready() and saturated(), inlined, and a loop rather than a comprehension (a function
        # call): this runs once per request for every backend.
        candidates = []
        for b in self.backends:
            if (
                (b.health is HEALTHY or now >= b.cooldown_until)
                and b.inflight < b.max_inflight
                and b not in exclude
                and (b.quota is None or b.quota.has_room(now, tokens))
            ):
                candidates.append(b)
        if not candidates:
            candidates = [
                b
                for b in self.backends
                if b not in exclude
                and b.ready(now)
                and (b.quota is None or b.quota.has_room(now, tokens))
            ]
            if not candidates:
                return None
        chosen = None
        if affinity is not None and self.ring is not None:
            # The key's backend, or the next on the ring under the load bound; else the strategy.
            chosen = self.ring.pick(affinity, candidates)
        if chosen is None:
            chosen = self.strategy.pick(candidates, now)
        if chosen.health is not HEALTHY:
            chosen.start_probe(now)
        if chosen.quota is not None:
            chosen.quota.charge(now, tokens)
        return chosen

    def quota_wait(self, exclude: Container[BackendState] = (), *, tokens: int = 0) -> float | None:
        """Seconds until the first ready backend's account is predicted to have room for a
        request of ``tokens`` tokens; None if no ready backend is held back by its quota."""
        now = self.clock()
        waits = [
            b.quota.available_in(now, tokens)
            for b in self.backends
            if b.quota is not None and b not in exclude and b.ready(now)
        ]
        return min(waits) if waits else None

    def retry_in(self) -> float | None:
        """Seconds until the earliest EJECTED backend may be probed (0.0 if one may be now);
        None if no backend is EJECTED (all busy, or their probes are in flight)."""
        now = self.clock()
        due = [b.cooldown_until for b in self.backends if b.health is Health.EJECTED]
        return max(0.0, min(due) - now) if due else None

    def __repr__(self) -> str:
        counts = dict.fromkeys(Health, 0)
        inflight = 0
        for backend in self.backends:
            counts[backend.health] += 1
            inflight += backend.inflight
        summary = f"{counts[Health.HEALTHY]} healthy, {counts[Health.EJECTED]} ejected"
        if counts[Health.PROBING]:
            summary += f", {counts[Health.PROBING]} probing"
        return f"<Pool {self.name} {self.strategy.name} [{summary} | {inflight} in flight]>"
