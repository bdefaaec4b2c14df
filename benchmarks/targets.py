"""The three things measured: nginx alone (the upstream), the floor proxy, and the router.

nginx and wrk share core 1; the floor proxy and the router get core 0 (only one of them is
under load at a time). All three listen on loopback ports picked free for this run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.procs import Process, Processes, free_port, http_status, pinned

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PROXY_CORE, LOAD_CORE = 0, 1
CLIENT_KEY = "sk-bench-key-0001"
AUTH_HEADER = f"Bearer {CLIENT_KEY}"
READY_TIMEOUT = 30.0

_ROUTER_CONFIG = """\
server: {{host: 127.0.0.1, port: {port}, workers: 1, access_log: false, drain_seconds: 1}}
metrics: {{enabled: {metrics}}}
keys: [{{name: bench, key: {key}, models: ["*"]{limits}}}]
{redis}
models:
  gpt-4o:
    strategy: least-latency
    backends:
      - {{name: nginx, url: "http://127.0.0.1:{upstream}/v1", api_key: upstream-key}}
  gpt-4o-stream:
    strategy: least-latency
    backends:
      - {{name: nginx-stream, url: "http://127.0.0.1:{upstream}/stream/v1", api_key: upstream-key}}
"""


def request_body(stream: bool) -> bytes:
    """A typical chat request (~300 bytes); the same bytes go to every target."""
    payload: dict[str, object] = {
        "model": "gpt-4o-stream" if stream else "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
            {"role": "user", "content": "Write one sentence about a quick brown fox and a dog."},
        ],
        "temperature": 0.2,
        "max_tokens": 128,
        "user": "benchmark",
    }
    if stream:
        payload["stream"] = True
    return orjson.dumps(payload)


@dataclass(frozen=True, slots=True)
class Target:
    key: str  # "upstream" | "floor" | "router"
    title: str
    port: int
    json_path: str
    stream_path: str
    pid: int  # whose CPU time (with its children's) is charged to this target

    def path(self, stream: bool) -> str:
        return self.stream_path if stream else self.json_path

    def url(self, stream: bool) -> str:
        return f"http://127.0.0.1:{self.port}{self.path(stream)}"

    def check(self, stream: bool) -> None:
        """One request by hand before wrk: a 200 with a complete answer, or raise."""
        headers = {"Content-Type": "application/json", "Authorization": AUTH_HEADER}
        status, body = http_status(
            self.port, "POST", self.path(stream), request_body(stream), headers
        )
        good = _complete(body, stream)
        if status != 200 or not good:
            raise RuntimeError(f"{self.title}: bad answer {status}: {body[:300]!r}")


def _complete(body: bytes, stream: bool) -> bool:
    if stream:
        return body.endswith(b"data: [DONE]\n\n") and b"event: error" not in body
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(answer, dict) and answer.get("object") == "chat.completion"


def start_nginx(procs: Processes, workdir: Path) -> Target:
    port = free_port()
    prefix = workdir / "nginx"
    prefix.mkdir()
    template = (BENCH_DIR / "nginx.conf").read_text()
    conf = prefix / "nginx.conf"
    rendered = template.replace("{prefix}", str(prefix)).replace("{port}", str(port))
    conf.write_text(rendered.replace("{pid}", str(prefix / "nginx.pid")))
    argv = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    process = procs.start("nginx", pinned(LOAD_CORE, argv))
    paths = ("/v1/chat/completions", "/stream/v1/chat/completions")
    target = Target("upstream", "nginx (upstream)", port, *paths, process.popen.pid)
    _wait(process, target)
    return target


def start_floor(procs: Processes, upstream: Target) -> Target:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "benchmarks.floor_proxy",
        "--port",
        str(port),
        "--upstream",
        f"http://127.0.0.1:{upstream.port}",
    ]
    process = procs.start("floor", pinned(PROXY_CORE, argv))
    process.wait_ready(lambda: "READY" in process.log_tail(), READY_TIMEOUT)
    paths = (upstream.json_path, upstream.stream_path)
    target = Target("floor", "floor proxy", port, *paths, process.popen.pid)
    _wait(process, target)
    return target


# Limits high enough never to refuse: the benchmark prices the check, not the refusal.
_LIMITS = ", limits: {rpm: 1000000000, tpm: 1000000000000, concurrency: 100000}"


def start_router(
    procs: Processes, upstream: Target, workdir: Path, *, variant: str = "", redis_url: str = ""
) -> Target:
    """The router; ``variant`` "limits" gives the key limits (in-process buckets, or Redis's
    when ``redis_url`` is set), "nometrics" turns metrics off."""
    key = "router" + (f"-{variant}" if variant else "") + ("-redis" if redis_url else "")
    port = free_port()
    config = workdir / f"{key}.yaml"
    config.write_text(
        _ROUTER_CONFIG.format(
            port=port,
            key=CLIENT_KEY,
            upstream=upstream.port,
            limits=_LIMITS if variant == "limits" else "",
            metrics="false" if variant == "nometrics" else "true",
            redis=f"redis: {{url: {redis_url!r}}}" if redis_url else "",
        )
    )
    argv = [sys.executable, "-m", "router", "serve", "--config", str(config), "--workers", "1"]
    process = procs.start(key, pinned(PROXY_CORE, argv))
    process.wait_ready(lambda: http_status(port, "GET", "/readyz")[0] == 200, READY_TIMEOUT)
    paths = ("/v1/chat/completions", "/v1/chat/completions")
    target = Target(key, key, port, *paths, process.popen.pid)
    _wait(process, target)
    return target


def start_redis(procs: Processes) -> str:
    """A private redis-server on the load core (its CPU is not the router's)."""
    port = free_port()
    argv = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    process = procs.start("redis", pinned(LOAD_CORE, argv))
    process.wait_ready(lambda: "Ready to accept connections" in process.log_tail(), READY_TIMEOUT)
    return f"redis://127.0.0.1:{port}/0"


def _wait(process: Process, target: Target) -> None:
    """Ready once both kinds of answer come back complete."""

    def answers() -> bool:
        target.check(stream=False)
        target.check(stream=True)
        return True

    process.wait_ready(answers, READY_TIMEOUT)
