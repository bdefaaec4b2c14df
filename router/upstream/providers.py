"""How each provider spells an upstream request: the URL per endpoint and the credential header.

``openai`` is any OpenAI-compatible server (OpenAI, vLLM, TGI, llama.cpp, LiteLLM, ...):
``{url}/chat/completions`` with ``Authorization: Bearer``. ``azure`` is Azure OpenAI's
deployment API: ``{url}/openai/deployments/{deployment}/chat/completions?api-version=...`` with
an ``api-key`` header; its Responses API lives at ``{url}/openai/responses`` and names the
deployment in the body's ``model``.

Realtime is a WebSocket: ``ws(s)://{url}/realtime?model=...`` for OpenAI, and on Azure
``wss://{url}/openai/realtime?api-version=...&deployment=...`` (what the openai SDK's
``AzureOpenAI`` dials).
"""

from __future__ import annotations

from yarl import URL

from router.config import BackendConfig, Endpoint

_OPENAI_PATHS: dict[Endpoint, str] = {
    "chat": "chat/completions",
    "embeddings": "embeddings",
    "responses": "responses",
    "realtime": "realtime",
}
_WS_SCHEMES = {"http": "ws", "https": "wss"}


def upstream_model(config: BackendConfig, public_id: str) -> str:
    """The model name the backend expects in the body."""
    if config.provider == "azure":
        return config.deployment or config.model or public_id
    return config.model or public_id


def endpoint_url(config: BackendConfig, endpoint: Endpoint, public_id: str) -> URL:
    if endpoint == "realtime":
        return _realtime_url(config, public_id)
    base = URL(config.url)
    if config.provider == "openai":
        return base / _OPENAI_PATHS[endpoint]
    if endpoint == "responses":
        url = base / "openai" / "responses"
    else:
        deployment = upstream_model(config, public_id)
        url = base / "openai" / "deployments" / deployment / _OPENAI_PATHS[endpoint]
    return url.with_query({"api-version": config.api_version})


def _realtime_url(config: BackendConfig, public_id: str) -> URL:
    base = URL(config.url)
    base = base.with_scheme(_WS_SCHEMES[base.scheme])
    model = upstream_model(config, public_id)
    if config.provider == "openai":
        return (base / "realtime").with_query({"model": model})
    query = {"api-version": config.api_version, "deployment": model}
    return (base / "openai" / "realtime").with_query(query)


def credential_headers(config: BackendConfig) -> dict[str, str]:
    """The backend's own credential; the client's key is never forwarded."""
    if config.api_key is None:
        return {}
    secret = config.api_key.get_secret_value()
    if config.provider == "azure":
        return {"api-key": secret}
    return {"Authorization": f"Bearer {secret}"}
