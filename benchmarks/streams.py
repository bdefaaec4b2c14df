"""``--streams N``: N concurrent slow streams through one router process, and what they cost.

wrk cannot hold streams open, so this mode has its own client (asyncio, in this process, pinned
to the load core beside the slow upstream, ``benchmarks/slow_upstream.py``). The router, with key
auth, metrics and the access log on, is warmed up with a few streams, then:

1. **idle RSS**: its ``VmRSS`` with nothing in flight;
2. N streams are opened (at most :data:`OPENING` at a time, so the listen backlog never
   overflows) and each must answer 200 and relay a first ``data:`` event;
3. **RSS at N**: ``VmRSS`` with all N open; per stream = (RSS at N - idle RSS) / N;
4. the upstream ends every stream (SIGUSR1); each must end with ``data: [DONE]``, and no error.

Each open stream holds two sockets in the router (client and upstream): it needs ``2N`` file
descriptors and a few more, so ``ulimit -n`` must allow it (the soft limit is raised to the hard
one here; the hard one can only be raised by root, e.g. ``ulimit -Hn 65536``).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import uvloop

from benchmarks.procs import Process, Processes, free_port, http_status, pinned, rss_kib
from benchmarks.targets import (
    AUTH_HEADER,
    LOAD_CORE,
    PASSTHROUGH,
    PROXY_CORE,
    READY_TIMEOUT,
    REPO,
    request_body,
)

OPENING = 256  # streams being opened at once (connect, request, first event)
SPARE_FDS = 128  # the router's listeners, its log, the loop, Python's own files
WARM_UP = 20
PHASE_TIMEOUT = 300.0

_CONFIG = """\
server: {{host: 127.0.0.1, port: {port}, workers: 1, access_log: true, drain_seconds: 1,
          max_connections: {inflight}}}
metrics: {{enabled: true}}
keys: [{{name: bench, key: {key}, models: ["*"]}}]
models:
  gpt-4o-stream:
    backends:
      - {{name: slow, url: "http://127.0.0.1:{upstream}/v1", api_key: upstream-key,
          max_inflight: {inflight}}}
"""


@dataclass
class Tally:
    """What the client saw, over all streams; ``changed`` wakes whoever waits for a count."""

    opened: int = 0
    done: int = 0
    errors: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def bump(self) -> None:
        self.changed.set()

    async def wait_for(self, count: int, what: str) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while getattr(self, what) + len(self.errors) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(deadline - time.monotonic(), 0.01))


class StreamClient(asyncio.Protocol):
    """One streamed chat request: a 200 and a first event count as opened, [DONE] as done."""

    def __init__(self, tally: Tally, request: bytes, opened: asyncio.Future[None]) -> None:
        self.tally, self.request, self.opened = tally, request, opened
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.tail = b""
        self.finished = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.head += data
            if not self.head.startswith(b"HTTP/1.1 200 "):
                return self._fail(f"answer {self.head[:60]!r}")
            if b"\ndata: " in self.head or b"\r\n\r\ndata: " in self.head:
                self.tally.opened += 1
                self.tally.bump()
                self.opened.set_result(None)
        seen = self.tail + data
        if b"event: error" in seen:
            return self._fail("error event")
        if b"data: [DONE]" in seen:
            self.finished = True
            self.tally.done += 1
            self.tally.bump()
            assert self.transport is not None
            self.transport.close()
        self.tail = seen[-32:]
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self._fail(f"connection lost: {exc!r}")

    def _fail(self, why: str) -> None:
        if self.finished:
            return
        self.finished = True
        self.tally.errors.append(why)
        self.tally.bump()
        if not self.opened.done():
            self.opened.set_result(None)
        if self.transport is not None:
            self.transport.close()


def chat_request(port: int) -> bytes:
    body = request_body(stream=True)
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: {AUTH_HEADER}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def open_streams(port: int, count: int, tally: Tally) -> None:
    """Open ``count`` streams, at most :data:`OPENING` at a time, each up to its first event."""
    loop = asyncio.get_running_loop()
    request = chat_request(port)
    gate = asyncio.Semaphore(OPENING)

    async def one() -> None:
        async with gate:
            opened = loop.create_future()
            try:
                await loop.create_connection(
                    lambda: StreamClient(tally, request, opened), "127.0.0.1", port
                )
            except OSError as exc:
                tally.errors.append(f"connect: {exc!r}")
                tally.bump()
                return
            await opened

    await asyncio.gather(*(one() for _ in range(count)))


@dataclass(frozen=True, slots=True)
class StreamsResult:
    streams: int
    idle_rss_kib: int
    open_rss_kib: int
    open_seconds: float
    opened: int
    done: int
    errors: list[str]

    @property
    def per_stream_kib(self) -> float:
        return (self.open_rss_kib - self.idle_rss_kib) / self.streams

    @property
    def ok(self) -> bool:
        return not self.errors and self.opened == self.done == self.streams

    def as_dict(self) -> dict[str, object]:
        return {
            "streams": self.streams,
            "idle_rss_kib": self.idle_rss_kib,
            "open_rss_kib": self.open_rss_kib,
            "per_stream_kib": round(self.per_stream_kib, 1),
            "open_seconds": round(self.open_seconds, 1),
            "opened": self.opened,
            "done": self.done,
            "errors": len(self.errors),
            "first_errors": self.errors[:5],
        }


MAX_PER_STREAM_KIB = 30
MAX_IDLE_RSS_MIB = 60


def markdown(result: StreamsResult, header: str) -> str:
    per_stream, idle_mib = result.per_stream_kib, result.idle_rss_kib / 1024
    lines = [
        header,
        "",
        "| streams | idle RSS | RSS, all open | per open stream | time to open | done | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {result.streams:,} | {idle_mib:.1f} MiB | {result.open_rss_kib / 1024:.1f} MiB "
        f"| {per_stream:.1f} KiB | {result.open_seconds:.1f} s | {result.done:,} "
        f"| {len(result.errors)} |",
        "",
        f"- {'PASS' if per_stream <= MAX_PER_STREAM_KIB else 'FAIL'} RSS per open stream "
        f"<= {MAX_PER_STREAM_KIB} KiB: {per_stream:.1f} KiB",
        f"- {'PASS' if idle_mib <= MAX_IDLE_RSS_MIB else 'FAIL'} idle RSS "
        f"<= {MAX_IDLE_RSS_MIB} MiB: {idle_mib:.1f} MiB",
        f"- {'PASS' if result.ok else 'FAIL'} every stream opened and ended with [DONE], "
        f"no error: {result.done:,}/{result.streams:,}, {len(result.errors)} errors",
    ]
    lines += [f"  - {error}" for error in result.errors[:5]]
    return "\n".join(lines) + "\n"


def raise_fd_limit(streams: int) -> None:
    """Soft ``RLIMIT_NOFILE`` up to the hard one (children inherit it); fail if too low."""
    need = 2 * streams + SPARE_FDS
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        raise RuntimeError(
            f"{streams} streams need {need} file descriptors in the router; the hard limit is "
            f"{hard} (raise it as root: ulimit -Hn {need}), or run fewer --streams"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(streams: int, workdir: Path, proxy: str = "router") -> StreamsResult:
    """``proxy``: the router, or ``cand-httptools`` (the pass-through with issue 11's candidate
    client: what a stream costs with no feature, the reference for the router's figure)."""
    raise_fd_limit(streams)
    os.sched_setaffinity(0, {LOAD_CORE})  # this process is the client: the load core
    with Processes(workdir, cwd=REPO) as procs:
        upstream_port = free_port()
        argv = [sys.executable, "-m", "benchmarks.slow_upstream", "--port", str(upstream_port)]
        upstream = procs.start("slow-upstream", pinned(LOAD_CORE, argv))
        upstream.wait_ready(lambda: "READY" in upstream.log_tail(), READY_TIMEOUT)
        port = free_port()
        if proxy == "router":
            process = _start_router(procs, workdir, port, upstream_port, streams + WARM_UP)
        else:
            argv = [sys.executable, "-m", PASSTHROUGH[proxy], "--port", str(port)]
            argv += ["--upstream", f"http://127.0.0.1:{upstream_port}"]
            process = procs.start(proxy, pinned(PROXY_CORE, argv))
            process.wait_ready(lambda: "READY" in process.log_tail(), READY_TIMEOUT)

        def release() -> None:
            os.kill(upstream.popen.pid, signal.SIGUSR1)

        return uvloop.run(_measure(port, streams, process.popen.pid, release))


def _start_router(
    procs: Processes, workdir: Path, port: int, upstream_port: int, inflight: int
) -> Process:
    config = workdir / "router-streams.yaml"
    key = AUTH_HEADER.split()[1]
    config.write_text(_CONFIG.format(port=port, key=key, upstream=upstream_port, inflight=inflight))
    argv = [sys.executable, "-m", "router", "serve", "--config", str(config)]
    router = procs.start("router-streams", pinned(PROXY_CORE, argv))
    router.wait_ready(lambda: http_status(port, "GET", "/readyz")[0] == 200, READY_TIMEOUT)
    return router


async def _measure(port: int, streams: int, pid: int, release: Callable[[], None]) -> StreamsResult:
    warm = Tally()
    await open_streams(port, WARM_UP, warm)
    release()
    await warm.wait_for(WARM_UP, "done")
    if warm.errors:
        raise RuntimeError(f"warm-up streams failed: {warm.errors[:3]}")
    idle = rss_kib(pid)
    print(f"idle RSS {idle / 1024:.1f} MiB; opening {streams} streams", file=sys.stderr)
    tally = Tally()
    started = time.monotonic()
    await open_streams(port, streams, tally)
    opened_in = time.monotonic() - started
    full = rss_kib(pid)
    print(
        f"{tally.opened} open in {opened_in:.1f} s, RSS {full / 1024:.1f} MiB, "
        f"{len(tally.errors)} errors; ending them",
        file=sys.stderr,
    )
    release()
    await tally.wait_for(streams, "done")
    return StreamsResult(
        streams, idle, full, opened_in, tally.opened, tally.done, list(tally.errors)
    )
