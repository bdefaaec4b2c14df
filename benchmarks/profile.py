"""Price the router's per-request steps: a sampling profile over a benchmark load.

``python -m benchmarks.profile [--duration 10]`` starts nginx and the router as ``run.py`` does
(key auth, metrics and the access log on, the router pinned to its core), drives it with wrk at
c=64 (chat JSON, then chat SSE), and records it meanwhile with ``py-spy`` (the "bench" extra;
``--nonblocking``, pinned to the load core, so the router is never paused). Each sample is
charged to the innermost frame that belongs to a step (:data:`STEPS`); a step's share of the
samples times the router's CPU per request, measured in the same run, is its price in µs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.procs import Processes, cpu_seconds, pinned
from benchmarks.report import SCENARIOS, Scenario
from benchmarks.run import wrk
from benchmarks.targets import (
    LOAD_CORE,
    REPO,
    Target,
    request_body,
    start_nginx,
    start_router,
)

Frame = tuple[str, str]  # (function, file)
Price = tuple[Counter[str], float]  # samples per step, router CPU per request (us)


def _in(*parts: str) -> Callable[[Frame], bool]:
    return lambda frame: any(part in frame[1] for part in parts)


def _named(path: str, *names: str) -> Callable[[Frame], bool]:
    return lambda frame: frame[0] in names and path in frame[1]


# (step, frame test); a sample goes to the step of its innermost matching frame.
STEPS: tuple[tuple[str, Callable[[Frame], bool]], ...] = (
    ("auth (key lookup)", _in("router/auth/")),
    ("auth (key lookup)", _named("handlers/common.py", "authenticate", "principal_for")),
    ("read body", _named("handlers/common.py", "read_body")),
    ("parse (orjson, model, stream)", _named("handlers/common.py", "parse_payload")),
    ("parse (orjson, model, stream)", _named("handlers/common.py", "require_model")),
    ("parse (orjson, model, stream)", _named("handlers/common.py", "check_stream")),
    ("parse (orjson, model, stream)", _named("handlers/proxy.py", "_asking_usage")),
    ("route (model -> pool chain)", _named("router/routing.py", "chain")),
    ("account quota (x-ratelimit-*, headroom)", _in("balancers/quota.py", "upstream/ratelimit.py")),
    ("account quota (x-ratelimit-*, headroom)", _named("upstream/backend.py", "read_quota")),
    ("account quota (x-ratelimit-*, headroom)", _in("router/metrics/quota.py")),
    ("pick (balancer, health)", _in("balancers/")),
    ("pick (balancer, health)", _named("upstream/forward.py", "_pick")),
    ("limits", _in("router/limits/", "handlers/admission.py")),
    ("upstream headers", _named("handlers/proxy.py", "forward_headers")),
    ("upstream client", _in("aiohttp/client", "aiohttp/connector", "router/upstream/http/")),
    ("forwarder (retries, attempt)", _in("upstream/forward.py", "upstream/backend.py")),
    ("forwarder (retries, attempt)", _in("upstream/report.py")),
    ("relay (response to client)", _in("upstream/relay.py", "upstream/reply.py")),
    ("metrics (record, usage tap)", _in("router/metrics/", "upstream/streamtap.py")),
    ("metrics (record, usage tap)", _in("router/usage.py")),
    ("access log", _in("router/logs.py", "logging/")),
    ("edge (context, errors, handler)", _in("router/edge.py", "router/context.py")),
    ("edge (context, errors, handler)", _in("handlers/proxy.py")),
)
OUTSIDE = "aiohttp server, event loop (outside the handler)"


def parse_frame(text: str) -> Frame:
    """py-spy's raw frame ``function (file:line)``."""
    name, _, where = text.partition(" (")
    return name, where.rsplit(":", 1)[0]


def step_of(stack: Sequence[Frame]) -> str:
    for frame in reversed(stack):  # innermost first
        for step, test in STEPS:
            if test(frame):
                return step
    return OUTSIDE


def tally(raw: str) -> Counter[str]:
    """Samples per step, from py-spy's ``--format raw`` (collapsed stacks: ``a;b;c count``)."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        counts[step_of([parse_frame(frame) for frame in stack.split(";")])] += int(count)
    return counts


def profile(target: Target, scenario: Scenario, seconds: int, workdir: Path) -> Price:
    """wrk on the router while py-spy records it: samples per step, and CPU per request."""
    body = workdir / f"{scenario.key}.json"
    body.write_bytes(request_body(scenario.stream))
    wrk(target, scenario, 2, body)  # warm-up: pools filled
    out = workdir / f"{scenario.key}.txt"
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [spy, "record", "--nonblocking", "-r", "250", "-f", "raw", "-o", str(out)]
    argv += ["-d", str(seconds), "-p", str(target.pid)]
    recorder = subprocess.Popen(
        pinned(LOAD_CORE, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        before = cpu_seconds(target.pid)
        result = wrk(target, scenario, seconds, body)
        cpu_us = 1e6 * (cpu_seconds(target.pid) - before) / max(result.requests, 1)
        recorder.wait(seconds + 60)
    finally:
        recorder.kill()
    return tally(out.read_text()), cpu_us


def markdown(prices: dict[str, Price]) -> str:
    keys = list(prices)
    steps = sorted(
        {step for counts, _ in prices.values() for step in counts},
        key=lambda step: -sum(prices[key][0][step] / prices[key][0].total() for key in keys),
    )
    head = " | ".join(f"{key}: share | {key}: us/request" for key in keys)
    lines = [f"| step | {head} |", "|---|" + "---:|---:|" * len(keys)]
    for step in steps:
        cells = []
        for key in keys:
            counts, cpu_us = prices[key]
            share = counts[step] / counts.total()
            cells.append(f"{share:.1%} | {share * cpu_us:.1f}")
        lines.append(f"| {step} | {' | '.join(cells)} |")
    totals = " | ".join(f"100% | {prices[key][1]:.0f}" for key in keys)
    lines.append(f"| **total (router CPU/request)** | {totals} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw stacks in this folder")
    parser.add_argument(
        "--variant",
        choices=("", "quota", "quota-untracked"),
        default="",
        help="quota: nginx sends x-ratelimit-* headers, tracked; quota-untracked: sent, ignored",
    )
    args = parser.parse_args(argv)
    prices: dict[str, Price] = {}
    with tempfile.TemporaryDirectory(prefix="switchyard-profile-") as tmp:
        workdir = Path(tmp)
        with Processes(workdir, cwd=REPO) as procs:
            upstream = start_nginx(procs, workdir)
            router = start_router(procs, upstream, workdir, variant=args.variant)
            for scenario in (s for s in SCENARIOS if s.connections > 1):
                prices[scenario.title] = price = profile(router, scenario, args.duration, workdir)
                print(f"  {scenario.title}: {price[1]:.0f} us/request", file=sys.stderr)
                if args.raw is not None:
                    args.raw.mkdir(parents=True, exist_ok=True)
                    shutil.copy(workdir / f"{scenario.key}.txt", args.raw)
    print(markdown(prices))
    return 0


if __name__ == "__main__":
    sys.exit(main())
