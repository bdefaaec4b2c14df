"""A backend's declared account limits (``limits: {rpm, tpm}``) in the config."""

from __future__ import annotations

import textwrap

import pytest

from router.config import ConfigError, parse_config
from router.limits.types import MAX_PER_MINUTE
from router.upstream.backend import declared_account

CONFIG = """
keys: [{name: demo, key: sk-demo-local, models: ["*"]}]
models:
  gpt-4o:
    backends:
      - {name: azure-a, url: "https://a.openai.azure.com", provider: azure, deployment: d,
         limits: LIMITS}
"""


def parse(limits: str):
    return parse_config(textwrap.dedent(CONFIG.replace("LIMITS", limits)), {})


def problems(limits: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(limits)
    return caught.value.problems


def test_declared_limits_become_the_accounts_buckets() -> None:
    backend = parse("{rpm: 2700, tpm: 450000}").models["gpt-4o"].backends[0]
    account = declared_account(backend)
    assert account is not None
    assert account.id == "account:azure-a"
    assert (account.limits.rpm, account.limits.tpm, account.limits.concurrency) == (
        2700,
        450_000,
        None,
    )


def test_one_limit_alone_or_none() -> None:
    only_tpm = declared_account(parse("{tpm: 1000}").models["gpt-4o"].backends[0])
    assert only_tpm is not None
    assert only_tpm.limits.rpm is None
    assert declared_account(parse("{}").models["gpt-4o"].backends[0]) is None


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ("{rpm: 0}", "rpm"),
        ("{tpm: -5}", "tpm"),
        (f"{{tpm: {MAX_PER_MINUTE + 1}}}", "tpm"),
        ("{concurrency: 4}", "concurrency"),
        ("{rpm: lots}", "rpm"),
    ],
)
def test_bad_limits_are_refused_with_their_path(limits: str, field: str) -> None:
    found = problems(limits)
    assert any("limits" in problem and field in problem for problem in found), found
