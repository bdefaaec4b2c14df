"""``openai``: any OpenAI-compatible server (OpenAI, vLLM, TGI, llama.cpp, LiteLLM, ...).

``{url}/chat/completions`` with ``Authorization: Bearer``; realtime is a WebSocket at
``ws(s)://{url}/realtime?model=...``.
"""

from __future__ import annotations

from yarl import URL

from router.config import BackendConfig
from router.endpoints import ENDPOINTS, Endpoint
from router.upstream.providers.base import WS_SCHEMES


class OpenAI:
    """OpenAI's own API shape."""

    def model(self, config: BackendConfig, public_id: str) -> str:
        return config.model or public_id

    def url(self, config: BackendConfig, endpoint: Endpoint, public_id: str) -> URL:
        base = URL(config.url)
        if endpoint == "realtime":
            base = base.with_scheme(WS_SCHEMES[base.scheme])
            return (base / "realtime").with_query({"model": self.model(config, public_id)})
        return base / ENDPOINTS[endpoint].upstream_path

    def credential_headers(self, config: BackendConfig) -> dict[str, str]:
        if config.api_key is None:
            return {}
        return {"Authorization": f"Bearer {config.api_key.get_secret_value()}"}
