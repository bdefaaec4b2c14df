"""Per-backend state: in-flight count, peak-EWMA latency, and health.

The router calls :meth:`BackendState.begin` / :meth:`BackendState.end` around each request and
reports its outcome; strategies read :meth:`BackendState.load`. Time always arrives as ``now``
(monotonic seconds), so this module never reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from balancers.health import DEFAULT_POLICY, TABLE, Event, Health, HealthPolicy
from balancers.quota import Quota, Report

# Finagle's PeakEwma charges a backend that has no latency sample yet but already has requests
# in flight this much, so a new backend is tried (load 0 while idle) without being handed every
# request until its first response lands. Any real estimate * (inflight + 1) stays far below.
UNSAMPLED_PENALTY = float(2**47)


class BackendState:
    """One upstream backend, as the balancer sees it.

    Latency is a peak EWMA of time-to-first-byte, as in Finagle's ``PeakEwma`` and Linkerd's
    tower ``peak_ewma.rs``: a slower sample replaces the estimate at once (react to trouble
    immediately), faster samples pull it down gradually, and with no samples the estimate decays
    toward zero, so an idle slow backend is eventually tried again.

    ``cooldown_until`` is when the current ejection ends (0.0 while HEALTHY); while PROBING it is
    the probe's deadline, after which a probe whose report was lost may be replaced.
    """

    __slots__ = (
        "_estimate",
        "_stamp",
        "consecutive_failures",
        "cooldown_until",
        "ejections",
        "health",
        "inflight",
        "limited",
        "limited_until",
        "max_inflight",
        "name",
        "observer",
        "policy",
        "quota",
        "weight",
    )

    def __init__(
        self,
        name: str,
        *,
        weight: int = 1,
        max_inflight: int = 256,
        policy: HealthPolicy = DEFAULT_POLICY,
    ) -> None:
        if weight < 1:
            raise ValueError(f"backend {name!r}: weight must be >= 1, got {weight}")
        if max_inflight < 1:
            raise ValueError(f"backend {name!r}: max_inflight must be >= 1, got {max_inflight}")
        self.name = name
        self.weight = weight
        self.max_inflight = max_inflight
        self.policy = policy
        self.inflight = 0
        self.health = Health.HEALTHY
        self.consecutive_failures = 0
        self.ejections = 0
        self.cooldown_until = 0.0
        # The current ejection is a 429's (the account said "not now"), not a failure's: a
        # queue may wait out such a cooldown (balancers.vacancy); an outage it must not.
        self.limited = False
        self._estimate = 0.0
        self._stamp = 0.0
        # Told of every transition (old, new), e.g. to export it as a metric; never does I/O.
        self.observer: Callable[[Health, Health], None] | None = None
        # The account's quota, from its first answer with x-ratelimit-* headers on (or a
        # declared limit); None until then, and the pick skips every quota step while it is.
        self.quota: Quota | None = None
        # The end of a cooldown that a 429 started (0.0: none): a pool whose backends all
        # wait out 429s is busy, not down (the client gets 429, not 503).
        self.limited_until = 0.0

    def report_quota(self, now: float, reports: tuple[Report | None, Report | None]) -> None:
        """An answer stated the account's remaining quota (``x-ratelimit-*``)."""
        quota = self.quota
        if quota is None:
            quota = self.quota = Quota()
        quota.report(now, reports)

    def available_in(self, now: float, tokens: int = 0) -> float:
        """Seconds until this backend may take a request of ``tokens`` estimated tokens, as
        far as its cooldown and its account's quota say (0.0: now; ``max_inflight`` aside)."""
        wait = 0.0 if self.ready(now) else self.cooldown_until - now
        if self.quota is not None:
            wait = max(wait, self.quota.available_in(now, tokens))
        return wait

    def begin(self) -> None:
        """Count a request as in flight."""
        self.inflight += 1

    def end(self) -> None:
        """Count a request as finished; never goes below zero."""
        if self.inflight > 0:
            self.inflight -= 1

    def saturated(self) -> bool:
        """True when the backend already has ``max_inflight`` requests in flight."""
        return self.inflight >= self.max_inflight

    def observe(self, latency: float, now: float) -> None:
        """Fold one time-to-first-byte sample (seconds) into the peak EWMA."""
        if latency > self._estimate:
            self._estimate = latency
        else:
            w = math.exp(-max(0.0, now - self._stamp) / self.policy.decay)
            self._estimate = self._estimate * w + latency * (1.0 - w)
        self._stamp = now

    def answered(self, now: float, latency: float | None = None) -> None:
        """Report an answer: :meth:`observe` ``latency`` (time to first byte, when it measures
        the backend), then count the success (:meth:`on_success` is this without a latency)."""
        if latency is not None:
            self.observe(latency, now)
        if self.health is Health.HEALTHY:  # the common case, kept off the table lookup
            self.consecutive_failures = 0
            return
        self._fire(Event.SUCCESS, now)

    def latency(self, now: float) -> float:
        """The latency estimate at ``now``, decayed toward zero since the last sample."""
        elapsed = max(0.0, now - self._stamp)
        return self._estimate * math.exp(-elapsed / self.policy.decay)

    def load(self, now: float) -> float:
        """Expected cost of sending one more request: decayed latency * (inflight + 1)."""
        if self._estimate == 0.0 and self.inflight:
            return UNSAMPLED_PENALTY + self.inflight
        return self.latency(now) * (self.inflight + 1)

    def ready(self, now: float) -> bool:
        """May take a request: HEALTHY, or EJECTED/PROBING whose deadline has passed (a probe)."""
        return self.health is Health.HEALTHY or now >= self.cooldown_until

    def on_success(self, now: float) -> None:
        """Report a successful request."""
        self.answered(now)

    def on_failure(self, now: float) -> None:
        """Report a failed request (connection error, timeout, 5xx)."""
        if (self.health, Event.FAILURE) not in TABLE:
            return
        self.consecutive_failures += 1
        if (
            self.health is Health.HEALTHY
            and self.consecutive_failures < self.policy.failures_to_eject
        ):
            return
        self._fire(Event.FAILURE, now)

    def on_rate_limited(self, now: float, retry_after: float | None) -> None:
        """Report a 429; ejects at once for ``retry_after`` seconds if given, else the backoff."""
        self._fire(Event.RATE_LIMITED, now, retry_after)
        self.limited_until = self.cooldown_until

    def start_probe(self, now: float) -> None:
        """Mark the backend PROBING: the Pool just chose it as the one request that tests it.

        The probe's own deadline is ``now + max_cooldown``: if its outcome is never reported,
        another probe is allowed after that instead of leaving the backend out forever.
        """
        self._fire(Event.PROBE, now)

    def on_abandoned(self, now: float) -> None:
        """A request ended with no outcome (its client went away before the answer).

        Not a transition: if it was the probe, its deadline simply ends now, so the next
        request probes instead of the backend waiting out ``max_cooldown`` in PROBING.
        """
        if self.health is Health.PROBING:
            self.cooldown_until = now

    def _fire(self, event: Event, now: float, retry_after: float | None = None) -> None:
        target = TABLE.get((self.health, event))
        if target is None:
            return
        if target is Health.HEALTHY:
            self.consecutive_failures = 0
            self.ejections = 0
            self.cooldown_until = 0.0
        elif target is Health.EJECTED:
            self.limited = event is Event.RATE_LIMITED
            self.ejections += 1
            self.cooldown_until = now + self.policy.cooldown(self.ejections, retry_after)
        else:
            self.cooldown_until = now + self.policy.max_cooldown
        previous, self.health = self.health, target
        if self.observer is not None:
            self.observer(previous, target)

    def __repr__(self) -> str:
        parts = [f"<BackendState {self.name} {self.health.value}"]
        parts.append(f"inflight={self.inflight}/{self.max_inflight} weight={self.weight}")
        parts.append(f"peak_ewma={self._estimate:.3f}s@{self._stamp:g}")
        if self.consecutive_failures:
            parts.append(f"failures={self.consecutive_failures}")
        if self.health is not Health.HEALTHY:
            parts.append(f"ejections={self.ejections} until={self.cooldown_until:g}")
        return " ".join(parts) + ">"
