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

from balancers import HealthPolicy, Pool, Ring, make_strategy
from router.auth import Principal
from router.config import Config, ModelConfig
from router.endpoints import ENDPOINTS, Endpoint
from router.errors import InvalidRequest, ModelNotFound
from router.homes import Home
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
        rng = self._rng = rng or random.Random()
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
        self._pinned: dict[tuple[Endpoint, str, str], Route] = {}

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
                states = [b.state for b in serving]
                pool = Pool(
                    model_id,
                    make_strategy(model.strategy, rng),
                    states,
                    clock=time.monotonic,
                    ring=Ring(states) if model.affinity == "prompt" else None,
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
        if model not in self._fallbacks or not (principal.unrestricted or principal.allows(model)):
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

    def pinned(self, endpoint: Endpoint, model: str, backend: str) -> Route | None:
        """A route to one backend of ``model`` only (a stored response's home), or None if the
        config no longer has it. Its pool shares the backend's state (health, in flight), so an
        ejected home answers 503 and no request ever reaches another account."""
        key = (endpoint, model, backend)
        route = self._pinned.get(key)
        if route is None:
            full = self._routes.get((endpoint, model))
            chosen = full.backends.get(backend) if full is not None else None
            if full is None or chosen is None:
                return None
            one = make_strategy("round-robin", self._rng)
            pool = Pool(model, one, [chosen.state], clock=time.monotonic)
            route = self._pinned[key] = Route(model, endpoint, pool, {backend: chosen})
        return route

    def homed(self, endpoint: Endpoint, model: str, home: Home) -> Route | None:
        """The route to ``home``'s account for a request naming ``model``: the home's own
        backend, or the backend of ``model`` that is the same account (same URL, same
        credentials: several models may share one provider account). None if there is none."""
        if model == home.model:
            return self.pinned(endpoint, model, home.backend)
        made_by = self._routes.get((endpoint, home.model))
        origin = made_by.backends.get(home.backend) if made_by is not None else None
        serving = self._routes.get((endpoint, model))
        if origin is None or serving is None:
            return None
        account = _account(origin, endpoint)
        for name, backend in serving.backends.items():
            if _account(backend, endpoint) == account:
                return self.pinned(endpoint, model, name)
        return None

    def first(self, endpoint: Endpoint, principal: Principal) -> Route | None:
        """The first route of ``endpoint`` (config order) whose model the key may use: where
        what names no model (a new conversation) goes."""
        for (serves, model), route in self._routes.items():
            if serves == endpoint and principal.allows(model):
                return route
        return None

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


def _account(backend: Backend, endpoint: Endpoint) -> tuple[str, frozenset[tuple[str, str]]]:
    """A provider account: where the endpoint is served, and with which credentials."""
    return backend.targets[endpoint], frozenset(backend.headers.items())
