"""What is measured: nginx alone (the upstream), the floor proxy, the router, and optionally the
client candidates and the TLS twins of all of them.

nginx and wrk share core 1; the proxies get core 0 (only one of them is under load at a time).
Everything listens on loopback ports picked free for this run. For the TLS scenario nginx also
listens with a certificate made for this run (``trustme``: a throwaway CA in the temp dir), and
every proxy talking to it trusts that CA: the router through its backend's ``tls.ca_file`` when
its config has one, and everything through ``SSL_CERT_FILE``, which OpenSSL's default verify
paths (``ssl.create_default_context``, so aiohttp's client) read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.procs import Process, Processes, free_port, http_status, pinned
from router.config import BackendConfig

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PROXY_CORE, LOAD_CORE = 0, 1
CLIENT_KEY = "sk-bench-key-0001"
AUTH_HEADER = f"Bearer {CLIENT_KEY}"
READY_TIMEOUT = 30.0

_ROUTER_CONFIG = """\
server: {{host: 127.0.0.1, port: {port}, workers: 1, access_log: {access}, drain_seconds: 1}}
metrics: {{enabled: {metrics}}}
keys: [{{name: bench, key: {key}, models: ["*"]{limits}}}]
{redis}
{queue}
models:
  gpt-4o:
    strategy: least-latency{affinity}
    backends:
      - {{name: nginx, url: "{scheme}://127.0.0.1:{upstream}{quota}/v1",
          api_key: upstream-key{tls}{reads}}}
  gpt-4o-stream:
    strategy: least-latency{affinity}
    backends:
      - {{name: nginx-stream, url: "{scheme}://127.0.0.1:{upstream}{quota}/stream/v1",
          api_key: upstream-key{tls}{reads}}}
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


@dataclass(frozen=True, slots=True)
class Tls:
    """nginx's TLS listener and the throwaway CA that signed its certificate."""

    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path

    def env(self) -> dict[str, str]:
        """The environment of a process that must trust the CA (see the module docstring)."""
        return {**os.environ, "SSL_CERT_FILE": str(self.ca_file)}


def make_tls(workdir: Path) -> Tls:
    """A CA and a certificate for 127.0.0.1 made now, in the temp dir (nothing committed)."""
    import trustme  # noqa: PLC0415 - the "bench" extra: only --tls needs it

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    tls = Tls(free_port(), workdir / "ca.pem", workdir / "server.pem", workdir / "server.key")
    ca.cert_pem.write_to_path(str(tls.ca_file))
    server.private_key_pem.write_to_path(str(tls.key_file))
    for index, pem in enumerate(server.cert_chain_pems):
        pem.write_to_path(str(tls.cert_file), append=index > 0)
    return tls


def _tls_listen(tls: Tls | None) -> str:
    if tls is None:
        return ""
    return (
        f"listen 127.0.0.1:{tls.port} ssl backlog=4096;\n"
        f"        ssl_certificate {tls.cert_file};\n"
        f"        ssl_certificate_key {tls.key_file};\n"
        "        ssl_session_cache shared:bench:1m;"
    )


def start_nginx(procs: Processes, workdir: Path, tls: Tls | None = None) -> Target:
    port = free_port()
    prefix = workdir / "nginx"
    prefix.mkdir()
    template = (BENCH_DIR / "nginx.conf").read_text()
    conf = prefix / "nginx.conf"
    rendered = template.replace("{prefix}", str(prefix)).replace("{port}", str(port))
    rendered = rendered.replace("{tls}", _tls_listen(tls))
    conf.write_text(rendered.replace("{pid}", str(prefix / "nginx.pid")))
    argv = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    process = procs.start("nginx", pinned(LOAD_CORE, argv))
    paths = ("/v1/chat/completions", "/stream/v1/chat/completions")
    target = Target("upstream", "nginx (upstream)", port, *paths, process.popen.pid)
    _wait(process, target)
    return target


# The pass-through proxies: the floor, and the client candidates of issue 11.
PASSTHROUGH = {
    "floor": "benchmarks.floor_proxy",
    "cand-httptools": "benchmarks.candidate_httptools",
    "cand-pyreqwest": "benchmarks.candidate_pyreqwest",
}


def start_passthrough(
    procs: Processes, key: str, upstream: Target, tls: Tls | None = None
) -> Target:
    """The floor or a candidate (``key`` in :data:`PASSTHROUGH`), over TLS when ``tls``."""
    port = free_port()
    scheme, upstream_port = ("https", tls.port) if tls else ("http", upstream.port)
    argv = [sys.executable, "-m", PASSTHROUGH[key], "--port", str(port)]
    argv += ["--upstream", f"{scheme}://127.0.0.1:{upstream_port}"]
    name = key + ("-tls" if tls else "")
    process = procs.start(name, pinned(PROXY_CORE, argv), env=tls.env() if tls else None)
    process.wait_ready(lambda: "READY" in process.log_tail(), READY_TIMEOUT)
    paths = (upstream.json_path, upstream.stream_path)
    target = Target(name, name, port, *paths, process.popen.pid)
    _wait(process, target)
    return target


# Limits high enough never to refuse: the benchmark prices the check, not the refusal.
_LIMITS = ", limits: {rpm: 1000000000, tpm: 1000000000000, concurrency: 100000}"


def start_router(
    procs: Processes,
    upstream: Target,
    workdir: Path,
    *,
    variant: str = "",
    redis_url: str = "",
    tls: Tls | None = None,
    checkout: Path | None = None,
    wrapper: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
) -> Target:
    """The router, key auth, metrics and the access log on (to its log file); ``variant``
    "limits" gives the key limits (in-process buckets, or Redis's when ``redis_url`` is set),
    "nometrics" turns metrics off, "noaccess" the access log, "bare" both (what those cost,
    in ``benchmarks.instructions``), "queue" gives every pool a wait queue (never contended:
    the load's 64 connections stay below a backend's 256 slots), "quota" has nginx send an
    account's x-ratelimit-* headers (under /quota/) that the pool then tracks, "quota-untracked"
    the same headers ignored (``quota_headers: false``: their bookkeeping's baseline),
    "affinity" puts ``affinity: prompt`` on both pools; ``tls``
    puts nginx's TLS listener behind it; ``checkout`` runs another checkout's router (with its
    own ``.venv``) as ``router-base``; ``wrapper`` goes before the interpreter (``valgrind
    ...``, for ``benchmarks.instructions``)."""
    key = "router" + (f"-{variant}" if variant else "") + ("-redis" if redis_url else "")
    key += "-tls" if tls else ""
    key += "-base" if checkout is not None else ""
    port = free_port()
    config = workdir / f"{key}.yaml"
    config.write_text(
        _ROUTER_CONFIG.format(
            port=port,
            key=CLIENT_KEY,
            scheme="https" if tls else "http",
            upstream=tls.port if tls else upstream.port,
            tls=_backend_tls(tls),
            limits=_LIMITS if variant == "limits" else "",
            metrics="false" if variant in ("nometrics", "bare") else "true",
            access="false" if variant in ("noaccess", "bare") else "true",
            redis=f"redis: {{url: {redis_url!r}}}" if redis_url else "",
            queue="queue: {max_wait: 10, max_depth: 100000}" if variant == "queue" else "",
            quota="/quota" if variant.startswith("quota") else "",
            reads=", quota_headers: false" if variant == "quota-untracked" else "",
            affinity="\n    affinity: prompt" if variant == "affinity" else "",
        )
    )
    python = sys.executable if checkout is None else str(checkout / ".venv" / "bin" / "python")
    argv = [*wrapper, python, "-m", "router", "serve", "--config", str(config), "--workers", "1"]
    env = tls.env() if tls else None
    process = procs.start(key, pinned(PROXY_CORE, argv), env=env, cwd=checkout)
    process.wait_ready(lambda: http_status(port, "GET", "/readyz")[0] == 200, ready_timeout)
    paths = ("/v1/chat/completions", "/v1/chat/completions")
    target = Target(key, key, port, *paths, process.popen.pid)
    _wait(process, target)
    return target


def _backend_tls(tls: Tls | None) -> str:
    """``tls: {ca_file}`` on the backend once the router's config has it (issue 11's client);
    until then ``SSL_CERT_FILE`` alone makes the router trust the CA."""
    if tls is None or "tls" not in BackendConfig.model_fields:
        return ""
    return f", tls: {{ca_file: {str(tls.ca_file)!r}}}"


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
