"""Backend health as a transition table.

Like h11's ``_state.py``, the rules are data: :data:`TABLE` maps ``(state, event)`` to the next
state, and a pair that is not in the table is a report to ignore. :class:`BackendState` owns the
counters and applies the table; nothing else changes ``health``.

::

    HEALTHY --FAILURE x failures_to_eject--> EJECTED   (cooldown = backoff)
    HEALTHY --RATE_LIMITED------------------> EJECTED   (cooldown = Retry-After, else backoff)
    EJECTED --PROBE (picked by the Pool)-----> PROBING  (exactly one request in flight; the
                                                         Pool picks it only once the cooldown
                                                         has ended, never earlier)
    PROBING --SUCCESS------------------------> HEALTHY  (backoff reset)
    PROBING --FAILURE / RATE_LIMITED--------> EJECTED   (backoff doubled, capped)
    PROBING --PROBE (deadline passed)--------> PROBING  (the first probe's report was lost)

Ignored on purpose: any report while EJECTED. A late SUCCESS from a request that started before
the ejection must not skip the probe, and a late FAILURE must not extend a cooldown that already
accounts for the failures that caused it. Reports carry no request identity, so while PROBING
the first report to arrive decides the probe, even if it belongs to an older request; either way
it is fresh evidence about the backend.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# 2.0 ** 1024 overflows; anything past this exponent is far beyond any sane max_cooldown anyway.
_MAX_EXPONENT = 1023


class Health(enum.Enum):
    """Where a backend is in its ejection cycle."""

    HEALTHY = "healthy"
    EJECTED = "ejected"
    PROBING = "probing"


class Event(enum.Enum):
    """What happened to a backend: a request outcome, or the Pool choosing it as a probe."""

    SUCCESS = "success"
    FAILURE = "failure"
    RATE_LIMITED = "rate_limited"
    PROBE = "probe"


TABLE: dict[tuple[Health, Event], Health] = {
    (Health.HEALTHY, Event.SUCCESS): Health.HEALTHY,
    # Guarded: BackendState fires this only once failures_to_eject failures are consecutive.
    (Health.HEALTHY, Event.FAILURE): Health.EJECTED,
    # A 429 is the provider telling us to stop now; waiting for N of them only earns more.
    (Health.HEALTHY, Event.RATE_LIMITED): Health.EJECTED,
    (Health.EJECTED, Event.PROBE): Health.PROBING,
    (Health.PROBING, Event.SUCCESS): Health.HEALTHY,
    (Health.PROBING, Event.FAILURE): Health.EJECTED,
    (Health.PROBING, Event.RATE_LIMITED): Health.EJECTED,
    # A probe whose outcome was never reported (a lost request) may be replaced once its
    # deadline passes, so one lost report cannot strand a backend in PROBING forever.
    (Health.PROBING, Event.PROBE): Health.PROBING,
}
"""``(state, event) -> next state``. Pairs not listed are reports to ignore."""


@dataclass(frozen=True)
class HealthPolicy:
    """How quickly backends are ejected and readmitted, and how fast latency memory fades.

    Defaults follow common outlier-detection practice: Envoy ejects after 5 consecutive 5xx
    for a 30 s base time; LLM upstreams fail slower and cost more per request, so we eject
    sooner (3) and retry sooner (5 s), doubling up to 5 minutes.
    """

    failures_to_eject: int = 3
    base_cooldown: float = 5.0
    max_cooldown: float = 300.0
    decay: float = 10.0

    def __post_init__(self) -> None:
        if self.failures_to_eject < 1:
            raise ValueError(f"failures_to_eject must be >= 1, got {self.failures_to_eject}")
        if not 0.0 <= self.base_cooldown <= self.max_cooldown:
            raise ValueError(
                f"need 0 <= base_cooldown <= max_cooldown, "
                f"got {self.base_cooldown} and {self.max_cooldown}"
            )
        if self.decay <= 0.0:
            raise ValueError(f"decay must be > 0, got {self.decay}")

    def cooldown(self, ejections: int, retry_after: float | None = None) -> float:
        """Seconds the ``ejections``-th consecutive ejection lasts.

        ``retry_after`` (a 429's Retry-After) wins over the backoff, clamped to
        ``[0, max_cooldown]``: the operator's cap also bounds a provider that asks for hours,
        and a probe after ``max_cooldown`` costs a single request.
        """
        if retry_after is not None:
            return min(self.max_cooldown, max(0.0, retry_after))
        exponent = min(max(ejections - 1, 0), _MAX_EXPONENT)
        return min(self.max_cooldown, self.base_cooldown * 2.0**exponent)


DEFAULT_POLICY = HealthPolicy()
