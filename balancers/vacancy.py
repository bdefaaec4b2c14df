"""Whether a pool can take a request now, and if not, whether waiting for it makes sense.

A queue must never hold a request that a free backend could serve, and must never hold one
for a pool that is down (an outage is a fast 503 and the fallbacks, as without a queue). So
each backend is, at ``now``, one of:

* **free**: :meth:`~balancers.pool.Pool.pick`'s first tier would choose it (ready and below
  ``max_inflight``; an ejected backend whose cooldown has ended is free for its one probe);
* **busy**: ready but at ``max_inflight``: a slot frees when one of its requests ends;
* **resting**: ejected after a 429 (``BackendState.limited``), ready again at
  ``cooldown_until``: the account's quota resets then; or carrying its one probe after such a
  rest, whose answer comes soon (and wakes the queue);
* **down**: ejected after failures, or probing after them: nothing a queue should wait for.

A backend whose account is predicted out of quota (:mod:`balancers.quota`) is not free: like a
resting one, it is ready again when its quota refills (``Quota.available_in``). The queue
checks the request-count headroom (``tokens=0``): the request's own token estimate is charged
at its pick.

Pure functions of the backends and the clock, O(n) in the backends like ``Pool.pick``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from balancers.health import Health
from balancers.state import BackendState

HEALTHY = Health.HEALTHY
EJECTED = Health.EJECTED


def has_room(backends: Iterable[BackendState], now: float) -> bool:
    """Some backend is free: exactly when ``Pool.pick`` has a first-tier candidate."""
    for b in backends:
        if (
            (b.health is HEALTHY or now >= b.cooldown_until)
            and b.inflight < b.max_inflight
            and (b.quota is None or b.quota.has_room(now, 0))
        ):
            return True
    return False


def ready_in(backends: Iterable[BackendState], now: float) -> float:
    """Seconds until waiting may pay off, when no backend is free: 0.0 if one is busy (a slot
    frees when a request ends, any moment) or probing after a 429, else until the earliest
    resting backend's cooldown ends; ``math.inf`` if every backend is down."""
    soonest = math.inf
    for b in backends:
        if b.health is HEALTHY or now >= b.cooldown_until:
            quota = b.quota
            if quota is None or b.inflight >= b.max_inflight or quota.has_room(now, 0):
                return 0.0  # ready, and not free: busy
            soonest = min(soonest, quota.available_in(now, 0))  # out of quota until it refills
            continue
        if b.limited:
            if b.health is not EJECTED:
                return 0.0  # its probe is out: the answer ends the rest, or starts another
            soonest = min(soonest, b.cooldown_until - now)
    return soonest


def next_rest_end(backends: Iterable[BackendState], now: float) -> float | None:
    """When the earliest resting backend's cooldown ends (a clock time after ``now``), or None:
    the one moment a queue's timer must wake it, besides a slot freeing."""
    ends = [
        b.cooldown_until
        for b in backends
        if b.health is EJECTED and b.limited and b.cooldown_until > now
    ]
    for b in backends:  # and when an account predicted out of quota refills
        if b.quota is not None and not b.quota.has_room(now, 0):
            ends.append(now + b.quota.available_in(now, 0))
    return min(ends) if ends else None
