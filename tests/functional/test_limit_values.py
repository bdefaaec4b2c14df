"""Limit values at every door: 0 refuses every request with a message naming the limit, and
values past the bounds (router.limits.types.MAX_LIMITS) are refused by check-config, the admin
API and the keys CLI alike.

Before: ``rpm: 0`` answered "Request too large for tokens per min (TPM): Limit None", and
limits up to 2^64-1 were accepted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from router.limits.types import MAX_CONCURRENCY, MAX_PER_MINUTE
from tests.functional.conftest import (
    UPSTREAM_KEY_A,
    Fake,
    RouterFactory,
    backend,
    make_config,
)
from tests.functional.router_process import REPO_ROOT

ADMIN_KEY = "sy-admin-test-key-0123456789abcdef"
PAUSED = "sk-test-paused-key-0123456789"
HUGE = 2**64 - 1
TOO_BIG = {"rpm": HUGE, "tpm": MAX_PER_MINUTE + 1, "concurrency": MAX_CONCURRENCY + 1}
LARGEST = {"rpm": MAX_PER_MINUTE, "tpm": MAX_PER_MINUTE, "concurrency": MAX_CONCURRENCY}


def config_with(fake: Fake, limits: dict[str, int]) -> dict[str, Any]:
    config = make_config({"gpt-4o": {"backends": [backend(fake, UPSTREAM_KEY_A)]}})
    config["keys"].append({"name": "paused", "key": PAUSED, "limits": limits})
    config["admin"] = {"key": ADMIN_KEY}
    return config


def switchyard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        check=False,
    )


@pytest.mark.parametrize(
    ("limit", "named"),
    [
        ("rpm", "requests per min (RPM): Limit 0."),
        ("tpm", "tokens per min (TPM): Limit 0."),
        ("concurrency", "concurrent requests: Limit 0."),
    ],
)
def test_a_zero_limit_refuses_every_request_and_names_it(
    start_router: RouterFactory, fake_a: Fake, limit: str, named: str
) -> None:
    router = start_router(config_with(fake_a, {limit: 0}))
    with openai.OpenAI(base_url=router.base_url, api_key=PAUSED, max_retries=0) as sdk:
        for _ in range(2):  # the same answer every time: waiting does not help
            with pytest.raises(openai.RateLimitError) as caught:
                sdk.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
                )
            error = caught.value
            assert error.code == "rate_limit_exceeded"
            assert error.type == ("tokens" if limit == "tpm" else "requests")
            assert named in error.message
            assert "None" not in error.message
            assert "retry-after" not in error.response.headers
    assert fake_a.requests() == []  # nothing went upstream


def test_check_config_refuses_limits_past_the_bounds(tmp_path: Path, fake_a: Fake) -> None:
    path = tmp_path / "config.yaml"
    config = config_with(fake_a, TOO_BIG)
    config["keys"].append(
        {"name": "negative", "key": "sk-test-negative-0123", "limits": {"rpm": -1}}
    )
    path.write_text(yaml.safe_dump(config))
    result = switchyard("check-config", str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"keys[2].limits.rpm: Input should be less than or equal to {MAX_PER_MINUTE}",
        f"keys[2].limits.tpm: Input should be less than or equal to {MAX_PER_MINUTE}",
        f"keys[2].limits.concurrency: Input should be less than or equal to {MAX_CONCURRENCY}",
        "keys[3].limits.rpm: Input should be greater than or equal to 0",
    ]
    path.write_text(yaml.safe_dump(config_with(fake_a, LARGEST)))
    assert switchyard("check-config", str(path)).returncode == 0


def test_the_admin_api_and_the_cli_refuse_limits_past_the_bounds(
    start_router: RouterFactory, fake_a: Fake, tmp_path: Path
) -> None:
    config = config_with(fake_a, {})
    router = start_router(config)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=router.url, headers=headers, timeout=10) as admin:
        for name, value in TOO_BIG.items():
            response = admin.post("/admin/keys", json={"name": "x", "limits": {name: value}})
            assert response.status_code == 400
            error = response.json()["error"]
            assert (error["param"], error["code"]) == (f"limits.{name}", "invalid_value")
            assert f"from 0 to {LARGEST[name]}" in error["message"]
        created = admin.post("/admin/keys", json={"name": "largest", "limits": LARGEST})
        assert created.status_code == 201, created.text
        assert created.json()["limits"] == LARGEST
        key_id = created.json()["id"]
        paused = admin.patch(f"/admin/keys/{key_id}", json={"limits": {"rpm": 0}})
        assert paused.status_code == 200, paused.text
        too_big = admin.patch(f"/admin/keys/{key_id}", json={"limits": {"tpm": HUGE}})
        assert too_big.json()["error"]["param"] == "limits.tpm"
        assert admin.get("/admin/keys").json()["data"][-1]["limits"]["rpm"] == 0
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump({**config, "store": {"path": str(tmp_path / "cli.sqlite3")}}))
    refused = switchyard("keys", "create", "--name", "x", "--rpm", str(HUGE), "--config", str(path))
    assert refused.returncode == 2
    assert f"Invalid 'limits.rpm': expected an integer from 0 to {MAX_PER_MINUTE}" in refused.stderr
    listed = switchyard("keys", "list", "--config", str(path))
    assert '"data": []' in listed.stdout  # nothing was created
