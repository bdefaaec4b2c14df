"""README command 1: ``switchyard demo`` serves on its embedded defaults (no provider account,
no Redis) over two fake backends, prints what it says it prints, and answers the SDK."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.functional.router_process import READY_TIMEOUT, REPO_ROOT
from tests.redis_server import free_port


@pytest.fixture
def demo() -> Iterator[tuple[str, list[str]]]:
    """The demo on a free router port (its fakes keep their fixed 9101 and 9102)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "router", "demo", "--port", str(port)],
        cwd=REPO_ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    listening = threading.Event()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if '"listening"' in line:
                listening.set()
        listening.set()  # ended: the test sees what it printed

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert listening.wait(READY_TIMEOUT), "the demo did not start"
        assert process.poll() is None, "".join(lines)
        yield f"http://127.0.0.1:{port}", lines
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(15)
        reader.join(5)
        if process.stdout is not None:
            process.stdout.close()


def test_demo_serves_both_fakes_and_prints_how(demo: tuple[str, list[str]]) -> None:
    root, lines = demo
    banner = "".join(lines)
    assert f"base URL : {root}/v1" in banner
    assert "API key  : sk-demo-local" in banner
    assert f"{root}/settings/api-keys" in banner
    admin_key = banner.split("admin key: ")[1].split()[0]
    seen = set()
    with openai.OpenAI(base_url=f"{root}/v1", api_key="sk-demo-local", max_retries=0) as client:
        for _ in range(8):  # weighted 3:1: both fakes answer within a cycle of four
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Hello!"}]
            )
            name = raw.headers["x-switchyard-backend"]
            assert raw.parse().choices[0].message.content == f"{name} says: Hello!"
            seen.add(name)
    assert seen == {"fake-a", "fake-b"}
    keys = httpx.get(f"{root}/admin/keys", headers={"Authorization": f"Bearer {admin_key}"})
    assert keys.status_code == 200
    assert httpx.get(f"{root}/settings/api-keys").status_code == 200
    assert "switchyard_requests_total" in httpx.get(f"{root}/metrics").text
