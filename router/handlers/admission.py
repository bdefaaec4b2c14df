"""A key's limits on the request path: admit before forwarding, settle and release after.

Unlimited keys never get here. For the others: one limiter call at admission (one Redis round
trip), a 429 with OpenAI's headers when a limit refuses, and in one ``finally`` the real token
usage settled and the concurrency slot returned, whatever way the request ended.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from router.auth import Principal
from router.errors import RateLimited, ServiceUnavailable
from router.limits import (
    Account,
    AccountLevel,
    Admission,
    Limiter,
    LimiterUnavailable,
    Limits,
    format_duration,
)
from router.metrics import METRICS_OFF, Recorder

_WHAT = {
    "requests": "requests per min (RPM)",
    "tokens": "tokens per min (TPM)",
    "concurrency": "concurrent requests",
}


@dataclass(slots=True)
class Charge:
    """What admission took from a key, and the usage that settles it."""

    key_id: str
    limits: Limits
    lease: str
    estimate: int
    headers: dict[str, str]
    actual: int | None = field(default=None)
    # The declared account charged with the key (None: none), its index among the
    # candidates, and the candidates' bucket levels after the admission.
    account: Account | None = None
    account_index: int | None = None
    levels: tuple[AccountLevel, ...] = ()

    @property
    def wants_usage(self) -> bool:
        return self.limits.tpm is not None or (
            self.account is not None and self.account.limits.tpm is not None
        )


async def admit(
    limiter: Limiter,
    principal: Principal,
    estimate: int,
    lease: str,
    metrics: Recorder = METRICS_OFF,
    accounts: Sequence[Account] = (),
) -> Charge:
    """Take the request's share of the key's limits (and of the first of ``accounts`` with
    room), or raise 429 (or 503 if the limit store is down and the router fails closed)."""
    limits = principal.limits
    try:
        admission = await limiter.admit(principal.key_id, limits, estimate, lease, accounts)
    except LimiterUnavailable as exc:
        metrics.limit_unchecked(exc.reason)
        raise ServiceUnavailable(
            "Rate limits cannot be checked right now; please retry.",
            code="limits_unavailable",
            headers={"retry-after": "1"},
        ) from None
    if admission.accounts_full:
        raise _accounts_full(admission)
    metrics.limit_checked(limits, admission)
    if not admission.allowed:
        raise _refusal(admission, limits, estimate)
    index = admission.account
    account = accounts[index] if index is not None else None
    return Charge(
        principal.key_id,
        limits,
        lease,
        estimate,
        admission.headers if not limits.empty else {},
        account=account,
        account_index=index,
        levels=admission.accounts,
    )


async def finish(limiter: Limiter, charge: Charge) -> None:
    """Settle tokens with the real usage and return the concurrency slot (never raises)."""
    if charge.actual is not None and charge.limits.tpm is not None:
        await limiter.settle(charge.key_id, charge.limits, charge.actual - charge.estimate)
    account = charge.account
    if charge.actual is not None and account is not None and account.limits.tpm is not None:
        await limiter.settle(account.id, account.limits, charge.actual - charge.estimate)
    if charge.limits.concurrency is not None:
        await limiter.release(charge.key_id, charge.limits, charge.lease)


class AccountsFull(RateLimited):
    """Every candidate account is at its declared quota: the pool is busy, not down.
    ``levels`` are their buckets as the limiter saw them."""

    def __init__(self, message: str, *, kind: str, headers: dict[str, str]) -> None:
        super().__init__(message, kind=kind, headers=headers)
        self.levels: tuple[AccountLevel, ...] = ()


def _accounts_full(admission: Admission) -> AccountsFull:
    kind = "tokens" if admission.kind == "tokens" else "requests"
    wait = admission.retry_after if admission.retry_after is not None else 60.0
    message = (
        f"Rate limit reached for {_WHAT[kind]} on every account serving this model. "
        f"Please try again in {format_duration(wait)}."
    )
    error = AccountsFull(message, kind=kind, headers={"retry-after": str(max(1, math.ceil(wait)))})
    error.levels = admission.accounts
    return error


def _refusal(admission: Admission, limits: Limits, estimate: int) -> RateLimited:
    kind = admission.kind or "requests"
    limit = {"requests": limits.rpm, "tokens": limits.tpm, "concurrency": limits.concurrency}[kind]
    # Concurrency is a request limit to clients: OpenAI's two types are requests and tokens.
    type_ = "tokens" if kind == "tokens" else "requests"
    headers = dict(admission.headers)
    if admission.retry_after is not None:
        wait = admission.retry_after
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        message = (
            f"Rate limit reached for {_WHAT[kind]}: Limit {limit}. "
            f"Please try again in {format_duration(wait)}."
        )
    elif limit == 0:  # no wait helps: the key may make no request at all
        message = (
            f"Rate limit reached for {_WHAT[kind]}: Limit 0. This key may not make requests; "
            "ask its administrator to raise the limit."
        )
    else:  # no wait helps: the request alone exceeds the tokens limit
        message = (
            f"Request too large for {_WHAT['tokens']}: Limit {limits.tpm}, "
            f"Requested {estimate}. Lower max_tokens or the prompt's size."
        )
    return RateLimited(message, kind=type_, headers=headers)
