"""What a provider does; :mod:`router.upstream.providers` holds one of each, by name."""

from __future__ import annotations

from typing import Protocol

from yarl import URL

from router.config import BackendConfig
from router.endpoints import Endpoint

WS_SCHEMES = {"http": "ws", "https": "wss"}
"""A realtime dial's scheme for the backend URL's (TLS follows https:// to wss://)."""


class Provider(Protocol):
    """How one kind of upstream API is addressed."""

    def model(self, config: BackendConfig, public_id: str) -> str:
        """The model name the backend expects in the body."""

    def url(self, config: BackendConfig, endpoint: Endpoint, public_id: str) -> URL:
        """Where ``endpoint``'s requests go (a ``ws(s)://`` URL for realtime)."""

    def credential_headers(self, config: BackendConfig) -> dict[str, str]:
        """The backend's own credential; the client's key is never forwarded."""
