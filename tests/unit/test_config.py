"""Config validation: every problem reported with its path, nothing half-valid accepted."""

from __future__ import annotations

import textwrap

import pytest

from router.config import ConfigError, load_config, parse_config

GOOD = """
server: {host: 127.0.0.1, port: 8080, workers: 1, max_body_bytes: 10485760}
keys:
  - {name: demo, key: "${DEMO_KEY:-sk-demo-local}", models: ["*"]}
models:
  gpt-4o:
    strategy: least-latency
    fallbacks: [gpt-4o-mini]
    backends:
      - name: openai-a
        url: https://api.openai.com/v1
        api_key: ${OPENAI_API_KEY}
        model: gpt-4o
        weight: 3
        max_inflight: 256
  gpt-4o-mini:
    backends:
      - {name: azure, provider: azure, url: "https://x.openai.azure.com", deployment: mini}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), env or {})
    return caught.value.problems


def test_the_issue_example_is_valid_and_interpolated() -> None:
    config = parse_config(GOOD, {"OPENAI_API_KEY": "sk-upstream"})
    backend = config.models["gpt-4o"].backends[0]
    assert backend.api_key is not None
    assert backend.api_key.get_secret_value() == "sk-upstream"
    assert config.keys[0].key.get_secret_value() == "sk-demo-local"
    assert config.models["gpt-4o"].fallbacks == ("gpt-4o-mini",)
    # Secrets do not show in a repr or a log of the config.
    assert "sk-upstream" not in repr(config)


def test_default_overrides_with_env() -> None:
    config = parse_config(GOOD, {"OPENAI_API_KEY": "k", "DEMO_KEY": "sk-from-env-123"})
    assert config.keys[0].key.get_secret_value() == "sk-from-env-123"


def test_missing_env_var_without_default_is_an_error() -> None:
    assert problems(GOOD) == [
        "models.gpt-4o.backends[0].api_key: environment variable OPENAI_API_KEY is not set "
        "and has no default"
    ]


def test_every_problem_is_listed_with_its_path() -> None:
    found = problems(
        """
        server: {port: 99999, colour: blue}
        models:
          gpt-4o:
            strategy: fastest
            fallbacks: [nope]
            backends:
              - {name: a, url: "https://ok.example/v1"}
              - {name: b, url: "not a url"}
              - {name: a, url: "http://x/v1", weight: 0}
        """
    )
    assert "server.port: Input should be less than or equal to 65535" in found
    assert "server.colour: unknown key" in found
    assert "models.gpt-4o.backends[1].url: not a URL" in found
    assert "models.gpt-4o.backends[2].weight: Input should be greater than or equal to 1" in found


def test_cross_reference_problems() -> None:
    found = problems(
        """
        keys:
          - {name: k, key: sk-123456789}
          - {name: k, key: sk-123456789}
        models:
          gpt-4o:
            strategy: fastest
            fallbacks: [nope, gpt-4o]
            backends:
              - {name: a, url: "https://ok.example/v1"}
              - {name: a, url: "https://ok.example/v1"}
        """
    )
    assert found == [
        "models.gpt-4o.strategy: unknown strategy 'fastest' "
        "(least-inflight, least-latency, round-robin, weighted)",
        "models.gpt-4o.fallbacks[0]: 'nope' is not another model",
        "models.gpt-4o.fallbacks[1]: 'gpt-4o' is not another model",
        "models.gpt-4o.backends[1].name: duplicate name (first at models.gpt-4o.backends[0])",
        "keys[1].name: duplicate name 'k'",
        "keys[1].key: the same key is listed twice",
    ]


def test_duplicate_yaml_keys_are_refused() -> None:
    found = problems(
        """
        models:
          gpt-4o: {backends: [{name: a, url: "http://a/v1"}]}
          gpt-4o: {backends: [{name: b, url: "http://b/v1"}]}
        """
    )
    assert len(found) == 1
    assert "duplicate key 'gpt-4o'" in found[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "expected a mapping at the top level"),
        ("models: {}", "models: Dictionary should have at least 1 item"),
        ("models: [", "config: while parsing"),
        ("models:\n  m: {backends: []}", "models.m.backends: Tuple should have at least 1 item"),
        ("models:\n  m: {}", "models.m.backends: required"),
    ],
)
def test_shapes(text: str, expected: str) -> None:
    assert any(expected in p for p in problems(text)), problems(text)


def test_short_client_keys_are_refused() -> None:
    found = problems(
        'keys: [{name: k, key: "short"}]\nmodels: {m: {backends: [{name: a, url: "http://a"}]}}'
    )
    assert found == ["keys[0].key: a key needs at least 8 characters"]


def test_embedded_default_config_loads() -> None:
    config = load_config(None, {})
    assert set(config.models) == {"gpt-4o", "gpt-4o-mini", "text-embedding-3-small"}
    assert config.server.port == 8080


def test_unreadable_file(tmp_path: object) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("/nonexistent/config.yaml", {})
    assert caught.value.problems[0].startswith("/nonexistent/config.yaml: cannot read")


def test_stream_idle_limit_cannot_exceed_first_byte() -> None:
    timeouts = "{first_byte: 5, idle: 9}"
    found = problems(
        f'models: {{m: {{backends: [{{name: a, url: "http://a/v1", timeouts: {timeouts}}}]}}}}'
    )
    assert found == ["models.m.backends[0].timeouts: idle must not be longer than first_byte"]


def test_admin_key_from_an_unset_variable_turns_the_admin_api_off() -> None:
    config = load_config(None, {})
    assert config.admin.key is None
    config = load_config(None, {"SWITCHYARD_ADMIN_KEY": "a-long-enough-admin-key"})
    assert config.admin.key is not None
    assert problems(
        'admin: {key: "short"}\nmodels: {m: {backends: [{name: a, url: "http://a"}]}}'
    ) == ["admin.key: the admin key needs at least 16 characters"]
