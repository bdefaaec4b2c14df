"""How each provider spells an upstream request, picked by name from :data:`PROVIDERS`.

A provider builds a backend's URL for each endpoint (HTTP and the realtime WebSocket), names
its credential header, and says which model name the backend expects. The strategies registry
(``balancers.strategies``) is the model: adding a provider (say, an OpenAI-compatible server
that wants another auth header) is one module here, one entry below, and its name in the
config's ``provider`` field.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from router.upstream.providers.azure import Azure
from router.upstream.providers.base import Provider
from router.upstream.providers.openai import OpenAI

PROVIDERS: Mapping[str, Provider] = MappingProxyType({"openai": OpenAI(), "azure": Azure()})
"""Every provider, by the name the config's ``provider`` field gives it."""

__all__ = ["PROVIDERS", "Provider"]
