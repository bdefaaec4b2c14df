"""Providers and endpoints are each described once, in a registry, and the config names them."""

from __future__ import annotations

from typing import get_args

import pytest

from router.config import BackendConfig
from router.endpoints import ENDPOINTS, Endpoint
from router.upstream.providers import PROVIDERS


def _backend(**fields: str) -> BackendConfig:
    return BackendConfig.model_validate({"name": "b", "api_key": "sk-up", **fields})


def test_the_config_names_exactly_the_registered_providers_and_endpoints() -> None:
    assert set(get_args(BackendConfig.model_fields["provider"].annotation)) == set(PROVIDERS)
    assert set(get_args(Endpoint)) == set(ENDPOINTS)
    assert all(name == spec.name for name, spec in ENDPOINTS.items())


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("chat", "https://api.example/v1/chat/completions"),
        ("embeddings", "https://api.example/v1/embeddings"),
        ("responses", "https://api.example/v1/responses"),
        ("realtime", "wss://api.example/v1/realtime?model=up"),
    ],
)
def test_openai_urls(endpoint: Endpoint, url: str) -> None:
    backend = _backend(url="https://api.example/v1", model="up")
    assert str(PROVIDERS["openai"].url(backend, endpoint, "public")) == url


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("chat", "https://r.azure/openai/deployments/dep/chat/completions?api-version=v1"),
        ("embeddings", "https://r.azure/openai/deployments/dep/embeddings?api-version=v1"),
        ("responses", "https://r.azure/openai/responses?api-version=v1"),
        ("realtime", "wss://r.azure/openai/realtime?api-version=v1&deployment=dep"),
    ],
)
def test_azure_urls(endpoint: Endpoint, url: str) -> None:
    backend = _backend(url="https://r.azure", provider="azure", deployment="dep", api_version="v1")
    assert str(PROVIDERS["azure"].url(backend, endpoint, "public")) == url


def test_model_names_and_credentials() -> None:
    openai, azure = PROVIDERS["openai"], PROVIDERS["azure"]
    plain = _backend(url="http://h/v1")
    assert openai.model(plain, "public") == "public"
    assert openai.credential_headers(plain) == {"Authorization": "Bearer sk-up"}
    deployed = _backend(url="http://h", provider="azure", model="m", deployment="d")
    assert azure.model(deployed, "public") == "d"
    assert azure.model(_backend(url="http://h", provider="azure", model="m"), "public") == "m"
    assert azure.credential_headers(deployed) == {"api-key": "sk-up"}
    keyless = BackendConfig.model_validate({"name": "b", "url": "http://h/v1"})
    assert openai.credential_headers(keyless) == azure.credential_headers(keyless) == {}
