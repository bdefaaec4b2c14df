"""Typed keys for the application's and each request's state (aiohttp ``AppKey``: no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from router.auth import KeyRing
from router.auth.principals import Authenticator
from router.config import Config
from router.homes.record import Cached
from router.limits import Limiter
from router.metrics import Recorder
from router.routing import RouteTable
from router.upstream.forward import Forwarder

if TYPE_CHECKING:  # redis is imported only when a Redis is configured (idle memory)
    import redis.asyncio


@dataclass
class ProcessState:
    """Process state the health endpoints report."""

    started_at: int
    draining: bool = False


@dataclass(frozen=True, slots=True)
class ProxyDeps:
    """What every proxied request reads from the app, in one lookup (each ``app[KEY]`` is a
    Python-level call); made once the app's resources are up."""

    config: Config
    auth: Authenticator
    routes: RouteTable
    forwarder: Forwarder
    limiter: Limiter
    metrics: Recorder


CONFIG = web.AppKey("config", Config)
KEYRING = web.AppKey("keyring", KeyRing)
ROUTES = web.AppKey("routes", RouteTable)
FORWARDER = web.AppKey("forwarder", Forwarder)
PROCESS = web.AppKey("process", ProcessState)
AUTH = web.AppKey("auth", Authenticator)
LIMITER = web.AppKey("limiter", Limiter)
REDIS: web.AppKey[redis.asyncio.Redis] = web.AppKey("redis")
METRICS = web.AppKey("metrics", Recorder)  # router.metrics.off when metrics.enabled is false
HOMES = web.AppKey("homes", Cached)  # stored responses' and conversations' homes
PROXY = web.AppKey("proxy", ProxyDeps)
