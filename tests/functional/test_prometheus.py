"""The Grafana dashboard against a real Prometheus (Debian's ``prometheus``) scraping a router.

Traffic of every kind goes through the router; then every PromQL expression of
``deploy/grafana/dashboards/switchyard.json`` is evaluated through Prometheus's HTTP API: each must
be valid and return data. Waiting is polling Prometheus for what it has ingested, bounded.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.conftest import (
    CLIENT_KEY,
    LIMITED_KEY,
    UPSTREAM_KEY_A,
    Fake,
    RouterFactory,
    backend,
    make_config,
    two_backend_models,
)
from tests.functional.router_process import REPO_ROOT
from tests.redis_server import free_port

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "switchyard.json"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
DEADLINE = 60.0


def dashboard_expressions() -> list[str]:
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    found: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend(target["expr"] for target in panel.get("targets", ()))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return found


def concrete(expr: str) -> str:
    """What Grafana would send: its variables filled in (all models, a short window)."""
    return expr.replace("$__rate_interval", "30s").replace("$model", ".*")


@contextmanager
def prometheus(target: str, directory: Path) -> Iterator[httpx.Client]:
    binary = shutil.which("prometheus")
    assert binary is not None, "Debian's prometheus package is needed (scripts/test installs it)"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "switchyard", "static_configs": [{"targets": [target]}]}],
    }
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    args = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address={address}",
        "--log.level=warn",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://{address}", timeout=10) as api:
            _until(lambda: _ready(api, process), "prometheus to be ready")
            yield api
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def _ready(api: httpx.Client, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "prometheus exited"
    try:
        return api.get("/-/ready").status_code == 200
    except httpx.TransportError:
        return False


def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)  # polling an external server for a state it reaches by itself


def query(api: httpx.Client, expr: str) -> list[dict[str, Any]]:
    response = api.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.fixture
def traffic_router(start_router: RouterFactory, fake_a: Fake, fake_b: Fake) -> Any:
    models = two_backend_models(fake_a, fake_b)
    models["gpt-4o"]["fallbacks"] = ["gpt-4o-mini"]
    models["queued"] = {"backends": [backend(fake_a, UPSTREAM_KEY_A, max_inflight=1)]}
    config = make_config(
        models,
        health={"failures_to_eject": 1, "cooldown": 1},
        queue={"max_wait": 30, "max_depth": 100},  # the Accounts row's queue series
    )
    config["keys"][1]["limits"] = {"rpm": 1, "tpm": 100000, "concurrency": 4}
    # An account that reports its quota (x-ratelimit-*): the Accounts row's gauges.
    fake_a.set_quota(rpm=100_000, tpm=10_000_000)
    return start_router(config)


def send_traffic(base_url: str, fake_a: Fake, fake_b: Fake) -> int:
    """Answers, streams, an upstream error, a retry and a fallback, rate-limit refusals."""
    with (
        openai.OpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client,
        openai.OpenAI(base_url=base_url, api_key=LIMITED_KEY, max_retries=0) as limited,
    ):
        for _ in range(4):
            client.chat.completions.create(model="gpt-4o", messages=HELLO)
            list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
        client.embeddings.create(model="text-embedding-3-small", input="hi")
        fake_a.fail_next({"status": 500})
        fake_b.fail_next({"status": 500})
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # retried, fell back
        for fake in (fake_a, fake_b):
            fake.fail_always({"status": 503})
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        for fake in (fake_a, fake_b):
            fake.reset()
        # Both backends of gpt-4o-mini are ejected now: 503 no_backend until a cooldown (1 s)
        # ends and a probe takes one back.
        refused = _until_answered(client)
        limited.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        with pytest.raises(openai.RateLimitError):
            limited.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    return 4 + 4 + 1 + 1 + refused + 1 + 2  # chat requests sent


def queued_burst(base_url: str, count: int = 3) -> int:
    """Requests at once on a one-slot pool: all but one wait in its queue (observed waits)."""

    def one(_: int) -> None:
        with openai.OpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client:
            client.chat.completions.create(
                model="queued", messages=HELLO, extra_body={"fake": {"delay_first_byte": 0.2}}
            )

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(one, range(count)))
    return count


def _until_answered(client: openai.OpenAI) -> int:
    """Ask gpt-4o-mini until a backend answers; the number of 503s before that."""
    refused = 0
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            return refused
        except openai.InternalServerError as exc:
            if exc.code != "no_backend" or time.monotonic() > deadline:
                raise
            refused += 1
            time.sleep(0.1)  # polling the router with a deadline


def test_every_dashboard_expression_returns_data(
    traffic_router: Any, fake_a: Fake, fake_b: Fake, tmp_path: Path
) -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 20
    target = traffic_router.url.removeprefix("http://")
    with prometheus(target, tmp_path) as api:
        _until(lambda: query(api, 'up{job="switchyard"} == 1'), "the first scrape")
        chats = send_traffic(traffic_router.base_url, fake_a, fake_b)
        chats += queued_burst(traffic_router.base_url)
        total = 'sum(switchyard_requests_total{endpoint="chat"})'
        _until(lambda: _value(query(api, total)) == chats, "prometheus to see every request")
        for expr in expressions:
            _until(lambda expr=expr: query(api, concrete(expr)), f"data for {expr}")


def _value(result: list[dict[str, Any]]) -> float | None:
    return float(result[0]["value"][1]) if result else None
