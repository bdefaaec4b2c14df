"""An account's quota as the balancer plans with it: what is left, predicted, and when it refills.

The account states its own remaining requests and tokens on every answer, and the time until
each bucket is full again (OpenAI: "the time until the rate limit resets to its initial
state"). Between answers the router predicts: the last report, refilled at the rate that fills
it by its reset, minus what the router has sent since (one request and the request's token
estimate, charged at the pick). A backend predicted to lack room for a request is passed over
while another has room, and strategies scale their preference by :meth:`Quota.fraction`, so
traffic shifts away from an account as it nears its limit, not only once it refuses.

Pure and synchronous: every method takes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import math
from typing import NamedTuple

# A report without a reset (Azure sends none) is trusted this long: Azure evaluates its rate
# "over a small period of time, typically 1 or 10 seconds", so by then the next answer has
# spoken, or the account has refilled.
STALE_AFTER = 1.0
# Slack for float rounding: waiting exactly available_in() must find room (a queue that wakes
# at the predicted time and finds 0.9999999 of a request would spin on tiny waits).
_SLACK = 1e-6


class Report(NamedTuple):
    """One kind of limit (requests or tokens) as an answer states it: units left, seconds
    until full (None: not said), the per-minute limit (None: not said)."""

    remaining: float
    reset: float | None
    limit: float | None


class Allowance:
    """One kind of limit (requests or tokens) of one account, as last reported.

    OpenAI's limits are per minute and refill continuously: a reset of ``6ms`` after one
    request of a 10,000 RPM account is 60 s / 10,000. So the refill rate is ``limit / 60`` a
    second, and the bucket's size is what is left plus what refills by the reset (an account
    may hold less than a minute's worth: Azure evaluates RPM over 1 or 10 s). Without a limit
    (Azure sends only ``remaining``) the size is the most the account ever reported left.
    """

    __slots__ = ("capacity", "full_at", "pending", "rate", "remaining", "reported", "stamp")

    def __init__(self) -> None:
        self.capacity = math.inf  # unknown until a report
        self.remaining = math.inf
        self.reported = math.nan  # the last remaining the account stated, for the metrics
        self.rate = 0.0  # units refilled per second; 0.0 while unknown
        self.stamp = 0.0
        self.full_at = 0.0  # past this the bucket is full again (or the report is stale)
        self.pending = 0.0  # charged by the router since the report

    def report(
        self, now: float, remaining: float, reset: float | None, limit: float | None
    ) -> None:
        """The account's word, from an answer."""
        if limit:
            self.rate = limit / 60.0
        known = self.capacity if self.capacity != math.inf else 0.0
        if reset is None:
            self.capacity = max(known, remaining)
            self.full_at = now + STALE_AFTER
        else:
            if self.rate > 0.0:
                self.capacity = remaining + self.rate * reset
            else:
                self.capacity = max(known, remaining)
                if reset > 0.0 and self.capacity > remaining:
                    self.rate = (self.capacity - remaining) / reset
            self.full_at = now + reset
        self.remaining = self.reported = remaining
        self.stamp = now
        self.pending = 0.0

    def level(self, now: float) -> float:
        """Predicted units left at ``now`` (``inf`` while nothing is known): the report,
        refilled since, less what the router charged since (as if charged at the report: a
        charge on a bucket that had refilled to full is undercounted until the next report)."""
        if self.rate > 0.0:
            return min(
                self.capacity, self.remaining - self.pending + self.rate * (now - self.stamp)
            )
        if now >= self.full_at:
            # An account whose only word was "0 left" (Azure, no limit, no reset) is unknown
            # again once that word is stale: it must be tried to speak again.
            return self.capacity if self.capacity > 0.0 else math.inf
        return self.remaining - self.pending

    def wait(self, now: float, amount: float) -> float:
        """Seconds until ``amount`` units are predicted to be there (0.0: now)."""
        level = self.level(now)
        if level + _SLACK >= amount:
            return 0.0
        if self.rate > 0.0:
            return (amount - level) / self.rate
        return max(self.full_at - now, 0.0)

    def fraction(self, now: float) -> float:
        """Predicted share of the bucket left, in [0, 1] (1.0 while nothing is known)."""
        capacity = self.capacity
        if capacity <= 0.0:
            return 0.0 if now < self.full_at else 1.0
        if capacity == math.inf:
            return 1.0
        left = self.level(now) / capacity
        return left if left > 0.0 else 0.0


class Quota:
    """Requests and tokens of one backend's account."""

    __slots__ = ("floor_requests", "floor_tokens", "requests", "tokens")

    def __init__(self) -> None:
        self.requests = Allowance()
        self.tokens = Allowance()
        # The levels at the last report: a level only grows with time but for the pending
        # charges, so the floor less them is a lower bound that answers most picks in a few
        # attribute reads (the pick asks on every request).
        self.floor_requests = math.inf
        self.floor_tokens = math.inf

    def has_room(self, now: float, tokens: int) -> bool:
        """Predicted to accept one more request of ``tokens`` tokens now."""
        need = tokens if tokens > 1 else 1
        requests, allowance = self.requests, self.tokens
        if (
            self.floor_requests - requests.pending >= 1.0
            and self.floor_tokens - allowance.pending >= need
        ):
            return True
        if requests.level(now) + _SLACK < 1.0:
            return False
        return allowance.level(now) + _SLACK >= need

    def available_in(self, now: float, tokens: int) -> float:
        """Seconds until the account is predicted to accept a request of ``tokens`` tokens
        (0.0: now). What a queue waits for before trying this backend again."""
        return max(self.requests.wait(now, 1.0), self.tokens.wait(now, max(tokens, 1)))

    def fraction(self, now: float) -> float:
        """The predicted share of the quota left, in [0, 1]: the scarcer kind decides."""
        return min(self.requests.fraction(now), self.tokens.fraction(now))

    def report(self, now: float, reports: tuple[Report | None, Report | None]) -> None:
        """An answer's ``x-ratelimit-*`` headers, read by :func:`router.upstream.ratelimit.read`."""
        requests, tokens = reports
        if requests is not None:
            self.requests.report(now, *requests)
        if tokens is not None:
            self.tokens.report(now, *tokens)
        self.floor_requests = self.requests.level(now) + self.requests.pending
        self.floor_tokens = self.tokens.level(now) + self.tokens.pending

    def charge(self, now: float, tokens: int) -> None:
        """A request of ``tokens`` estimated tokens was sent to the account."""
        self.requests.pending += 1.0
        self.tokens.pending += tokens

    def __repr__(self) -> str:
        return (
            f"<Quota requests={self.requests.remaining:g}/{self.requests.capacity:g}"
            f" tokens={self.tokens.remaining:g}/{self.tokens.capacity:g}>"
        )
