"""A backend's tls and proxy settings: checked at load, the proxy URL never echoed."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from router.config import BackendConfig, ConfigError, parse_config
from router.upstream.scrub import Scrubber, secret_values

BASE = """
keys: [{name: demo, key: sk-demo-local-0123456789, models: ["*"]}]
models:
  gpt-4o:
    backends:
      - {name: a, url: "https://api.example/v1", %s}
"""


def backend_with(extra: str) -> BackendConfig:
    return parse_config(BASE % extra, {}).models["gpt-4o"].backends[0]


def problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE % extra, {})
    return caught.value.problems


def test_defaults_verify_against_the_system_store_without_proxy() -> None:
    backend = backend_with("weight: 1")
    assert backend.tls.verify is True
    assert backend.tls.ca_file is None
    assert backend.proxy is None


def test_tls_and_proxy_are_read(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    backend = backend_with(
        f'tls: {{ca_file: "{ca}", verify: true}}, proxy: "http://u:pw@proxy.internal:3128"'
    )
    assert backend.tls.ca_file == str(ca)
    assert backend.proxy is not None
    assert backend.proxy.get_secret_value() == "http://u:pw@proxy.internal:3128"
    assert "pw" not in repr(backend)


def test_a_missing_ca_file_is_refused() -> None:
    assert problems('tls: {ca_file: "/nonexistent/ca.pem"}') == [
        "models.gpt-4o.backends[0].tls.ca_file: no such file"
    ]


@pytest.mark.parametrize("proxy", ["https://u:secretpw@proxy:3128", "socks5://proxy:1080", "nope"])
def test_a_proxy_that_is_not_http_is_refused_without_echoing_it(proxy: str) -> None:
    found = problems(f'proxy: "{proxy}"')
    assert len(found) == 1
    assert found[0].startswith("models.gpt-4o.backends[0].proxy: ")
    assert "secretpw" not in found[0]
    assert proxy not in found[0]


def test_the_proxy_credential_is_one_of_the_backend_secrets() -> None:
    backend = backend_with(
        'api_key: sk-upstream-0123456789, proxy: "http://me:p%40ss-0123456789@px:3128"'
    )
    values = secret_values(backend)
    assert "me:p@ss-0123456789" in values  # its base64 is the Proxy-Authorization token
    assert "p@ss-0123456789" in values
    token = base64.b64encode(b"me:p@ss-0123456789").decode()
    scrubber = Scrubber.of(values)
    assert scrubber is not None
    assert token not in scrubber.body(f'{{"error": "bad proxy auth {token}"}}'.encode()).decode()
