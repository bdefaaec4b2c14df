"""Declared account limits on the request path: which accounts the admission may charge.

A backend with ``limits: {rpm, tpm}`` is an account whose quota is a pair of buckets shared by
every router (Redis) or kept in this process. The buckets are checked and charged in the same
limiter call as the key's own, so admission needs the candidate accounts before it runs: the
pool picks first (headroom and strategy as for any request), and the other declared backends
with room follow as alternatives. The limiter charges the first with room, or nothing when
none has; the request's first try then goes to the account charged (``ctx.pinned``), and the
buckets' levels feed each backend's :class:`~balancers.quota.Quota`, so later picks pass over
a full account until its bucket refills without asking the limiter. Retries after a failed try
go to other backends uncharged: the account that failed took the charge.
"""

from __future__ import annotations

from balancers.quota import Report
from router.auth import Principal
from router.context import RequestContext
from router.handlers.admission import AccountsFull, Charge, admit
from router.limits import Account, AccountLevel, Limiter
from router.metrics import Recorder
from router.upstream.backend import Backend
from router.upstream.refusal import rate_limited
from router.upstream.route import Route


def candidates(route: Route, ctx: RequestContext) -> tuple[Backend, ...]:
    """The declared accounts the admission may charge, in order of preference; () when the
    pick is an account without declared limits (it is pinned, nothing to charge). Raises the
    429 when every account is predicted full (nothing is charged then, not even the key)."""
    state = route.pool.pick(tokens=ctx.tokens)
    if state is None:
        refusal = rate_limited(None, (route,), ctx.tokens)
        if refusal is not None:
            raise refusal
        return ()  # no backend at all: the forwarder answers as it does
    chosen = route.backends[state.name]
    ctx.pinned = (route.model, chosen.name)
    if chosen.declared is None:
        return ()
    now = route.pool.clock()
    rest = [
        backend
        for other in route.pool.backends
        if other is not state
        and (backend := route.backends[other.name]).declared is not None
        and other.ready(now)
        and (other.quota is None or other.quota.has_room(now, ctx.tokens))
    ]
    return (chosen, *rest)


async def admit_accounts(
    limiter: Limiter, principal: Principal, route: Route, ctx: RequestContext, metrics: Recorder
) -> Charge:
    """Admission for the key and the first declared account of ``route`` with room."""
    backends = candidates(route, ctx)
    accounts = tuple(b.declared for b in backends if b.declared is not None)
    try:
        charge = await admit(limiter, principal, ctx.tokens, ctx.request_id, metrics, accounts)
    except AccountsFull as full:
        _learn(route, backends, full.levels)
        raise
    _learn(route, backends, charge.levels)
    if charge.account_index is not None:
        ctx.pinned = (route.model, backends[charge.account_index].name)
    return charge


def _learn(route: Route, backends: tuple[Backend, ...], levels: tuple[AccountLevel, ...]) -> None:
    """Feed the accounts' bucket levels to their quotas: later picks see a full account."""
    now = route.pool.clock()
    for backend, level in zip(backends, levels, strict=False):
        if backend.declared is not None:
            backend.state.report_quota(now, _reports(level, backend.declared))


def _reports(level: AccountLevel, account: Account) -> tuple[Report | None, Report | None]:
    rpm, tpm = account.limits.rpm, account.limits.tpm
    return (
        Report(level.requests[0], level.requests[1], rpm) if level.requests is not None else None,
        Report(level.tokens[0], level.tokens[1], tpm) if level.tokens is not None else None,
    )
