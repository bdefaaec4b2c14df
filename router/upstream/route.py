"""A route: one model's balancer pool for one endpoint, and the backends it picks from.

Built by :class:`router.routing.RouteTable`; defined here, below it, because the forwarder takes
one (the upstream layer must not import the routing layer that builds it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from balancers import Pool
from router.endpoints import Endpoint
from router.upstream.backend import Backend
from router.upstream.gate import Gate


@dataclass(frozen=True, slots=True)
class Route:
    """Where requests for ``model`` on ``endpoint`` go: ``pool`` picks one of ``backends``;
    ``gate`` is the pool's wait queue (None: no queue configured, fail fast)."""

    model: str
    endpoint: Endpoint
    pool: Pool
    backends: Mapping[str, Backend]
    gate: Gate | None = None
    # Some backend declares account limits (``limits: {rpm, tpm}``): admission charges one.
    declares: bool = field(init=False)

    def __post_init__(self) -> None:
        declared = any(b.declared is not None for b in self.backends.values())
        object.__setattr__(self, "declares", declared)


def plans_quota(chain: tuple[Route, ...]) -> bool:
    """Does any backend of ``chain`` track its account's quota? Then the pick needs the
    request's token estimate (a plain loop: a few attribute reads per request)."""
    for route in chain:
        for state in route.pool.backends:
            if state.quota is not None:
                return True
    return False
