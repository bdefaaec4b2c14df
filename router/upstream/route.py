"""A route: one model's balancer pool for one endpoint, and the backends it picks from.

Built by :class:`router.routing.RouteTable`; defined here, below it, because the forwarder takes
one (the upstream layer must not import the routing layer that builds it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
