"""``azure``: Azure OpenAI's deployment API.

``{url}/openai/deployments/{deployment}/chat/completions?api-version=...`` with an ``api-key``
header; the Responses API lives at ``{url}/openai/responses`` and names the deployment in the
body's ``model``. Realtime is ``wss://{url}/openai/realtime?api-version=...&deployment=...``
(what the openai SDK's ``AzureOpenAI`` dials).
"""

from __future__ import annotations

from yarl import URL

from router.config import BackendConfig
from router.endpoints import ENDPOINTS, Endpoint
from router.upstream.providers.base import WS_SCHEMES


class Azure:
    """Azure OpenAI: per-deployment paths, ``api-version`` on every URL, ``api-key``."""

    def model(self, config: BackendConfig, public_id: str) -> str:
        return config.deployment or config.model or public_id

    def url(self, config: BackendConfig, endpoint: Endpoint, public_id: str) -> URL:
        base = URL(config.url)
        if endpoint == "realtime":
            base = base.with_scheme(WS_SCHEMES[base.scheme])
            query = {"api-version": config.api_version, "deployment": self.model(config, public_id)}
            return (base / "openai" / "realtime").with_query(query)
        spec = ENDPOINTS[endpoint]
        url = base / "openai"
        if spec.deployment_scoped:
            url = url / "deployments" / self.model(config, public_id)
        return (url / spec.upstream_path).with_query({"api-version": config.api_version})

    def credential_headers(self, config: BackendConfig) -> dict[str, str]:
        if config.api_key is None:
            return {}
        return {"api-key": config.api_key.get_secret_value()}
