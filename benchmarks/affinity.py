"""What ``affinity: prompt`` costs: the same pool of two backends with and without it, at c=64.

``python -m benchmarks.affinity [--rounds 7] [--duration 5]`` starts nginx (the upstream) and
two routers pinned to the router core, alike but for ``affinity: prompt`` on their pool (both
backends are the one nginx, so the upstream is the same either way), then alternates wrk runs
(chat JSON, c=64) between them, A B B A ..., so drift on a shared machine hits both alike. It
reports the median req/s and the router's CPU time per request (user + system, from /proc; the
steadier figure on a noisy machine) of each, and their ratios.

The request names no ``user``: the cache key is the costlier prefix hash (the system message and
the first user message), not the one-string hash of ``user``.

``--micro`` prices the two steps affinity changes, in-process and without sockets (steadier than
req/s on a shared machine): the cache key, and ``Pool.pick`` with the ring against the pool's
strategy alone (least-latency). Their difference is what affinity adds per request.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from balancers import BackendState, Pool, Ring, make_strategy
from benchmarks.procs import Processes, free_port, http_status, pinned
from benchmarks.report import SCENARIOS, Cell
from benchmarks.run import in_temp_dir, measure_cell, wrk
from benchmarks.targets import (
    CLIENT_KEY,
    PROXY_CORE,
    READY_TIMEOUT,
    REPO,
    Target,
    request_body,
    start_nginx,
)
from router.cachekey import cache_key

_CONFIG = """\
server: {{host: 127.0.0.1, port: {port}, workers: 1, access_log: true, drain_seconds: 1}}
keys: [{{name: bench, key: {key}, models: ["*"]}}]
store: {{path: {store}}}
models:
  gpt-4o:
    strategy: least-latency
    affinity: {affinity}
    backends:
      - {{name: nginx-1, url: "http://127.0.0.1:{upstream}/v1", api_key: upstream-key}}
      - {{name: nginx-2, url: "http://127.0.0.1:{upstream}/v1", api_key: upstream-key}}
"""
SCENARIO = next(s for s in SCENARIOS if s.key == "chat-c64")


def start(procs: Processes, upstream: Target, workdir: Path, affinity: str) -> Target:
    port = free_port()
    config = workdir / f"router-{affinity}.yaml"
    store = workdir / affinity / "keys.sqlite3"
    config.write_text(
        _CONFIG.format(
            port=port, key=CLIENT_KEY, upstream=upstream.port, affinity=affinity, store=store
        )
    )
    argv = [sys.executable, "-m", "router", "serve", "--config", str(config), "--workers", "1"]
    process = procs.start(f"router-{affinity}", pinned(PROXY_CORE, argv))
    process.wait_ready(lambda: http_status(port, "GET", "/readyz")[0] == 200, READY_TIMEOUT)
    paths = ("/v1/chat/completions", "/v1/chat/completions")
    return Target(f"router-{affinity}", f"router ({affinity})", port, *paths, process.popen.pid)


def run(args: argparse.Namespace, workdir: Path) -> int:
    body = workdir / "body.json"
    payload = orjson.loads(request_body(stream=False))
    del payload["user"]
    body.write_bytes(orjson.dumps(payload))
    with Processes(workdir, REPO) as procs:
        upstream = start_nginx(procs, workdir)
        targets = [start(procs, upstream, workdir, a) for a in ("none", "prompt")]
        for target in targets:
            target.check(stream=False)
            wrk(target, SCENARIO, args.warmup, body)
        cells: dict[str, list[Cell]] = {t.key: [] for t in targets}
        for round_ in range(args.rounds):
            for target in targets if round_ % 2 == 0 else targets[::-1]:
                cell = measure_cell(target, SCENARIO, args.duration, body)
                cells[target.key].append(cell)
                print(
                    f"  {target.title:18} {cell.wrk.requests_per_s:>9,.0f} req/s"
                    f"  CPU {cell.cpu_us:.1f} us/req" + ("" if cell.ok else "  ERRORS"),
                    file=sys.stderr,
                )
    report(cells["router-none"], cells["router-prompt"], args)
    return 0


def report(plain: list[Cell], affinity: list[Cell], args: argparse.Namespace) -> None:
    rps = [statistics.median(c.wrk.requests_per_s for c in cells) for cells in (plain, affinity)]
    cpu = [statistics.median(c.cpu_us for c in cells) for cells in (plain, affinity)]
    print(f"chat JSON, c=64, {args.rounds} alternated rounds of {args.duration} s (medians)")
    print(f"  without affinity: {rps[0]:,.0f} req/s, {cpu[0]:.1f} us CPU/req")
    print(f"  affinity: prompt: {rps[1]:,.0f} req/s, {cpu[1]:.1f} us CPU/req")
    print(f"  req/s ratio {rps[1] / rps[0]:.3f}, CPU/req ratio {cpu[1] / cpu[0]:.3f}")


def micro() -> int:
    """Microseconds per cache key and per pick, best of five runs of 200,000."""
    payload = orjson.loads(request_body(stream=False))
    del payload["user"]
    states = [BackendState("nginx-1"), BackendState("nginx-2")]
    strategy = make_strategy("least-latency", random.Random(0))
    plain = Pool("gpt-4o", strategy, states, clock=time.monotonic)
    ring = Pool("gpt-4o", strategy, states, clock=time.monotonic, ring=Ring(states))
    key = cache_key("chat", payload)
    assert key is not None

    def price(step: Callable[[], object]) -> float:
        return min(timeit.repeat(step, number=200_000, repeat=5)) / 200_000 * 1e6

    costs = {
        "cache key (prefix)": price(lambda: cache_key("chat", payload)),
        "pick, least-latency": price(plain.pick),
        "pick, ring": price(lambda: ring.pick(affinity=key)),
    }
    for step, us in costs.items():
        print(f"  {step:22} {us:6.3f} us")
    added = costs["cache key (prefix)"] + costs["pick, ring"] - costs["pick, least-latency"]
    print(f"  affinity adds {added:.3f} us per request")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.affinity", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7, help="alternated runs per router")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per router")
    parser.add_argument("--micro", action="store_true", help="price the steps in-process only")
    args = parser.parse_args(argv)
    if args.micro:
        return micro()
    return in_temp_dir(lambda tmp: run(args, tmp))


if __name__ == "__main__":
    sys.exit(main())
