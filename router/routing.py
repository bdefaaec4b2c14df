"""From a public model ID to the pools that serve it.

One :class:`Route` per (endpoint, model): a balancer pool over the backends of that model that
serve that endpoint. Backends are shared between a model's routes, so a backend's health and
latency are one, whichever endpoint observed them. Lookups are dict probes: the cost does not
grow with the number of models or backends.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

from balancers import HealthPolicy, Pool, make_strategy
from router.auth import Principal
from router.config import Config, ModelConfig
from router.endpoints import ENDPOINTS, Endpoint
from router.errors import InvalidRequest, ModelNotFound
from router.metrics import METRICS_OFF, Recorder
from router.upstream.backend import Backend, make_client, make_session, tls_context
from router.upstream.gate import Gate
from router.upstream.http import Resolver
from router.upstream.route import Route


class RouteTable:
    """Every route of the config, and the fallback chains between models."""

    def __init__(
        self,
        config: Config,
        *,
        rng: random.Random | None = None,
        metrics: Recorder = METRICS_OFF,
    ) -> None:
        rng = rng or random.Random()
        health = config.health
        self._policy = HealthPolicy(
            failures_to_eject=health.failures_to_eject,
            base_cooldown=health.cooldown,
            max_cooldown=health.max_cooldown,
            decay=health.latency_decay,
        )
        self.backends: list[Backend] = []
        self._metrics = metrics
        self._resolver = Resolver(asyncio.get_running_loop())  # one DNS cache for all backends
        self._routes: dict[tuple[Endpoint, str], Route] = {}
        self._fallbacks = {model_id: model.fallbacks for model_id, model in config.models.items()}
        self._queue = config.queue
        for model_id, model in config.models.items():
            self._add_model(model_id, model, rng)
        self._chains: dict[tuple[Endpoint, str], tuple[Route, ...]] = {}
        self._link_fallbacks()

    def _add_model(self, model_id: str, model: ModelConfig, rng: random.Random) -> None:
        metrics = self._metrics
        backends = []
        for cfg in model.backends:
            tls = tls_context(cfg)
            backends.append(
                Backend(
                    cfg,
                    model_id,
                    self._policy,
                    make_client(cfg, self._resolver, tls),
                    make_session(cfg, tls),
                    metrics.bind_backend(model_id, cfg.name),
                )
            )
        self.backends += backends
        for endpoint in ENDPOINTS:
            serving = [b for b in backends if endpoint in b.urls]
            if serving:
                pool = Pool(
                    model_id,
                    make_strategy(model.strategy, rng),
                    [b.state for b in serving],
                    clock=time.monotonic,
                )
                by_name = {b.name: b for b in serving}
                gate = self._gate(model_id, model, pool)
                self._routes[endpoint, model_id] = Route(model_id, endpoint, pool, by_name, gate)
                if gate is not None:
                    for b in serving:
                        b.queue_for(gate)

    def _gate(self, model_id: str, model: ModelConfig, pool: Pool) -> Gate | None:
        """The pool's wait queue: the model's own, else the top-level one, else none."""
        queue = model.queue or self._queue
        if queue is None:
            return None
        return Gate(model_id, pool, queue, self._metrics.bind_queue(model_id))

    def models(self) -> list[str]:
        return list(self._fallbacks)

    def __contains__(self, model: object) -> bool:
        return model in self._fallbacks

    def chain(self, endpoint: Endpoint, model: str, principal: Principal) -> tuple[Route, ...]:
        """The route for ``model`` then its fallbacks the key may use; raise if none."""
        if model not in self._fallbacks or not principal.allows(model):
            raise ModelNotFound(model)
        chain = self._chains.get((endpoint, model))
        if chain is None:
            raise InvalidRequest(
                f"The model `{model}` does not support {ENDPOINTS[endpoint].path}.",
                param="model",
                code="model_not_supported",
            )
        if principal.unrestricted or len(chain) == 1:
            return chain  # precomputed: no allocation on the hot path
        return tuple(route for route in chain if principal.allows(route.model))

    def _link_fallbacks(self) -> None:
        for (endpoint, model), route in self._routes.items():
            fallbacks = (self._routes.get((endpoint, f)) for f in self._fallbacks[model])
            self._chains[endpoint, model] = (route, *(r for r in fallbacks if r is not None))

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes.values())

    async def close(self) -> None:
        for route in self._routes.values():
            if route.gate is not None:
                route.gate.close()
        for backend in self.backends:
            await backend.close()

    def __repr__(self) -> str:
        return f"<RouteTable {len(self._fallbacks)} models, {len(self._routes)} routes>"
