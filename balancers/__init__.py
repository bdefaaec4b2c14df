"""Backend selection for Switchyard: pure, synchronous, clock-injected.

Read in this order: :mod:`balancers.health` (the ejection state machine as a table),
:mod:`balancers.state` (one backend: in-flight count, peak-EWMA latency, health),
:mod:`balancers.strategies` (how one backend is chosen among candidates),
:mod:`balancers.pool` (which backends are candidates), :mod:`balancers.budget` (whether a retry
is allowed at all), :mod:`balancers.vacancy` and :mod:`balancers.fairqueue` (whether a request
waits for a busy pool, and who goes next). Nothing here awaits, sleeps or reads the system clock.
"""

from balancers.affinity import Ring, key_hash
from balancers.budget import RetryBudget
from balancers.health import TABLE, Event, Health, HealthPolicy
from balancers.pool import Clock, Pool
from balancers.state import BackendState
from balancers.strategies import (
    STRATEGIES,
    LeastInflight,
    LeastLatency,
    RoundRobin,
    Strategy,
    Weighted,
    make_strategy,
)

__all__ = [
    "STRATEGIES",
    "TABLE",
    "BackendState",
    "Clock",
    "Event",
    "Health",
    "HealthPolicy",
    "LeastInflight",
    "LeastLatency",
    "Pool",
    "RetryBudget",
    "Ring",
    "RoundRobin",
    "Strategy",
    "Weighted",
    "key_hash",
    "make_strategy",
]
