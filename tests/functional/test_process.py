"""The router as an operator runs it: CLI, config checks, workers, SIGTERM drain."""

from __future__ import annotations

import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_A,
    Fake,
    RouterFactory,
    backend,
    make_config,
    two_backend_models,
)
from tests.functional.router_process import REPO_ROOT

AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}
HELLO = [{"role": "user", "content": "Hello"}]
BAD = """
models:
  gpt-4o:
    fallbacks: [gpt-5]
    backends:
      - {name: a, url: "https://api.openai.com/v1", api_key: "${NOT_SET_ANYWHERE}"}
      - {name: b, url: "ftp:/nope"}
"""


def switchyard(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sysconfig.get_path("scripts")) / "switchyard"
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=30, cwd=REPO_ROOT, check=False
    )


def test_check_config_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = switchyard("check-config", str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "models.gpt-4o.backends[0].api_key: environment variable NOT_SET_ANYWHERE is not set "
        "and has no default",
        "models.gpt-4o.backends[1].url: not a URL",
    ]
    fixed = BAD.replace("${NOT_SET_ANYWHERE}", "k").replace("ftp:/nope", "http://h/v1")
    path.write_text(fixed)
    result = switchyard("check-config", str(path))
    assert result.returncode == 1
    assert result.stderr.strip() == "models.gpt-4o.fallbacks[0]: 'gpt-5' is not another model"


def test_check_config_accepts_the_shipped_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "router", "check-config", "config.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ok (3 models" in result.stdout


def test_a_bad_config_never_starts_a_server(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = switchyard("serve", "--config", str(path), "--port", "0")
    assert result.returncode == 1
    assert "not a URL" in result.stderr
    assert "listening" not in result.stderr


def test_sigterm_drains_an_open_stream(start_router: RouterFactory, fake_a: Fake) -> None:
    router = start_router(make_config({"gpt-4o": {"backends": [backend(fake_a, UPSTREAM_KEY_A)]}}))
    fake_a.fail_always({"chunk_delay": 0.05})
    body = {"model": "gpt-4o", "messages": HELLO, "stream": True, "fake": {"words": 20}}
    with httpx.stream(
        "POST", f"{router.base_url}/chat/completions", json=body, headers=AUTH, timeout=30
    ) as response:
        chunks = response.iter_bytes()
        first = next(chunks)
        router.process.send_signal(signal.SIGTERM)
        with router.changed:
            assert router.changed.wait_for(
                lambda: any(r.get("msg") == "draining" for r in router.records()), 10
            )
        # Draining: no new connections, but the open stream runs to its end.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{router.url}/healthz")
        rest = b"".join(chunks)
    assert (first + rest).endswith(b"data: [DONE]\n\n")
    assert router.process.wait(15) == 0


def test_workers_share_one_port(start_router: RouterFactory, fake_a: Fake, fake_b: Fake) -> None:
    router = start_router(make_config(two_backend_models(fake_a, fake_b)), "--workers", "2")
    with router.changed:
        assert router.changed.wait_for(
            lambda: sum(r.get("msg") == "listening" for r in router.records()) == 2, 20
        )
    listening = {r["pid"] for r in router.records() if r.get("msg") == "listening"}
    assert len(listening) == 2
    # New connections spread over both workers (the kernel hashes each connection).
    for _ in range(40):
        with httpx.Client() as fresh:
            reply = fresh.post(
                f"{router.base_url}/chat/completions",
                json={"model": "gpt-4o", "messages": HELLO},
                headers=AUTH,
            )
            assert reply.status_code == 200
    served = {line["pid"] for line in router.wait_access(40)}
    assert served == listening
    assert router.stop() == 0
    stopped = {r["pid"] for r in router.records() if r.get("msg") == "stopped"}
    assert stopped == listening


def test_python_dash_m_router_and_the_console_script_agree() -> None:
    via_module = subprocess.run(
        [sys.executable, "-m", "router", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    via_script = switchyard("--help")
    assert via_module.returncode == via_script.returncode == 0
    assert "serve" in via_script.stdout
    assert "check-config" in via_script.stdout
