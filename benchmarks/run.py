"""Benchmark the router against the floor proxy and the upstream alone, in one run.

``python -m benchmarks.run [--duration 10] [--quick]``: starts nginx (the upstream), the floor
proxy and the router, each pinned to its core; runs wrk for each scenario against each target;
prints a markdown table with the ratios and targets; writes ``benchmarks/results/latest.json``.
Exits 1 if the run failed (a process did not start, wrk failed, or any response was not 2xx),
130 on Ctrl-C, 0 otherwise; missed targets are reported, not turned into an exit status.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TypeVar

import aiohttp
import orjson

from benchmarks import report, streams
from benchmarks.procs import Processes, cpu_seconds, pinned, rss_kib
from benchmarks.report import SCENARIOS, Cell, Results, Scenario
from benchmarks.targets import (
    AUTH_HEADER,
    BENCH_DIR,
    LOAD_CORE,
    REPO,
    Target,
    make_tls,
    request_body,
    start_nginx,
    start_passthrough,
    start_redis,
    start_router,
)
from benchmarks.wrkparse import WrkParseError, WrkResult, parse

T = TypeVar("T")
RESULTS = BENCH_DIR / "results" / "latest.json"
STREAMS_RESULTS = BENCH_DIR / "results" / "streams.json"
WRK_SCRIPT = BENCH_DIR / "wrk" / "post.lua"


# Targets a run may add beside the floor and the router: each a switch, what it adds.
_ALSO = {
    "--limits": "also the router with per-key limits: in-process, and in a private Redis",
    "--metrics": "also the router with metrics off (their cost)",
    "--queue": "also the router with a wait queue on every pool, never contended (its cost)",
    "--quota": "also the router over an upstream that sends x-ratelimit-* headers, tracked and not",
    "--candidates": "also the two upstream-client candidates of issue 11 (httptools, pyreqwest)",
    "--tls": "also the floor and the router (and the candidates) over a TLS upstream",
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per cell")
    parser.add_argument("--quick", action="store_true", help="2 s cells, 1 s warm-up")
    for flag, what in _ALSO.items():
        parser.add_argument(flag, action="store_true", help=what)
    parser.add_argument(
        "--streams",
        type=int,
        default=0,
        metavar="N",
        help="instead of the scenarios: N concurrent slow streams through one router (memory)",
    )
    parser.add_argument(
        "--streams-proxy",
        choices=("router", "cand-httptools"),
        default="router",
        help="with --streams: the router, or the pass-through with the candidate client",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also the router of another checkout (its own .venv), compared with this one: "
        "what a change costs or saves, in the same run",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every cell this many times, in alternating target order; keep the median",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 2, 1
    return args


def wrk(target: Target, scenario: Scenario, seconds: int, body_file: Path) -> WrkResult:
    """One wrk run on the load core; its report parsed (raises if wrk did not finish)."""
    argv = [
        *("wrk", "-t1", f"-c{scenario.connections}", f"-d{seconds}s", "--latency"),
        *("-s", str(WRK_SCRIPT), target.url(scenario.stream), "--"),
        *(str(body_file), f"Authorization: {AUTH_HEADER}"),
    ]
    done = subprocess.run(
        pinned(LOAD_CORE, argv), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse(done.stdout)


def measure(targets: list[Target], args: argparse.Namespace, workdir: Path) -> Results:
    """Every scenario against every target, targets interleaved so drift hits all alike."""
    bodies = {stream: workdir / f"body-{int(stream)}.json" for stream in (False, True)}
    for stream, path in bodies.items():
        path.write_bytes(request_body(stream))
    results: Results = {}
    for scenario in SCENARIOS:
        body = bodies[scenario.stream]
        for target in targets:
            target.check(scenario.stream)
            wrk(target, scenario, args.warmup, body)  # connection pools, caches: discarded
        runs: dict[str, list[Cell]] = {target.key: [] for target in targets}
        for round_ in range(args.rounds):
            # Alternating order, so that drift over the run does not favour one target.
            for target in targets if round_ % 2 == 0 else targets[::-1]:
                cell = measure_cell(target, scenario, args.duration, body)
                runs[target.key].append(cell)
                _progress(scenario, target, cell)
        results[scenario.key] = {key: median(cells) for key, cells in runs.items()}
    return results


def median(cells: list[Cell]) -> Cell:
    """The run with the median req/s (with its own CPU time): one noisy run moves nothing."""
    ranked = sorted(cells, key=lambda cell: cell.wrk.requests_per_s)
    return ranked[(len(ranked) - 1) // 2]


def measure_cell(target: Target, scenario: Scenario, seconds: int, body: Path) -> Cell:
    """One wrk run, and the CPU time the target spent meanwhile, per request."""
    before = cpu_seconds(target.pid)
    result = wrk(target, scenario, seconds, body)
    spent = cpu_seconds(target.pid) - before
    return Cell(result, cpu_us=1e6 * spent / max(result.requests, 1), rss_kib=rss_kib(target.pid))


def _progress(scenario: Scenario, target: Target, cell: Cell) -> None:
    run = cell.wrk
    print(
        f"  {scenario.title:16} {target.title:22} {run.requests_per_s:>10,.0f} req/s"
        f"  p50 {run.p50_ms:.3f} ms  p99 {run.p99_ms:.3f} ms  CPU {cell.cpu_us:.0f} us/req"
        + ("" if cell.ok else "  ERRORS"),
        file=sys.stderr,
    )


def run(args: argparse.Namespace, workdir: Path) -> Results:
    with Processes(workdir, cwd=REPO) as procs:
        tls = make_tls(workdir) if args.tls else None
        upstream = start_nginx(procs, workdir, tls)
        passthrough = ["floor", *(["cand-httptools", "cand-pyreqwest"] if args.candidates else [])]
        targets = [upstream, *(start_passthrough(procs, key, upstream) for key in passthrough)]
        targets.append(start_router(procs, upstream, workdir))
        if args.baseline is not None:
            targets.append(start_router(procs, upstream, workdir, checkout=args.baseline))
        if tls is not None:
            targets += [start_passthrough(procs, key, upstream, tls) for key in passthrough]
            targets.append(start_router(procs, upstream, workdir, tls=tls))
        if args.metrics:
            targets.append(start_router(procs, upstream, workdir, variant="nometrics"))
        if args.queue:
            targets.append(start_router(procs, upstream, workdir, variant="queue"))
        if args.quota:
            for variant in ("quota-untracked", "quota"):
                targets.append(start_router(procs, upstream, workdir, variant=variant))
        if args.limits:
            redis_url = start_redis(procs)
            targets.append(start_router(procs, upstream, workdir, variant="limits"))
            targets.append(
                start_router(procs, upstream, workdir, variant="limits", redis_url=redis_url)
            )
        print("every target is ready; measuring", file=sys.stderr)
        return measure(targets, args, workdir)


def machine() -> dict[str, object]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def save(results: Results, args: argparse.Namespace, host: dict[str, object], text: str) -> None:
    document = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": host,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "wrk_threads": 1,
        },
        "results": {s: {t: c.as_dict() for t, c in cells.items()} for s, cells in results.items()},
        "ratios": report.ratios(results),
        "checks": [
            {"name": c.name, "measured": c.measured, "passed": c.passed}
            for c in report.checks(results)
        ],
        "failures": report.failures(results),
        "markdown": text,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop processes


def in_temp_dir(work: Callable[[Path], T]) -> T | int:
    """``work`` in a temp dir of its own; its exit status instead if it failed (1) or was
    interrupted (130), every process it started being stopped by then."""
    try:
        with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as tmp:
            return work(Path(tmp))
    except KeyboardInterrupt:
        print("interrupted: every process of the run is stopped", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, WrkParseError) as exc:
        print(f"benchmark failed, every process of the run is stopped: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    if args.streams:
        return main_streams(args.streams, args.streams_proxy)
    results = in_temp_dir(lambda tmp: run(args, tmp))
    if isinstance(results, int):
        return results
    host = machine()
    header = (
        f"Switchyard benchmark, {datetime.date.today().isoformat()}, {args.duration} s per cell "
        f"(median of {args.rounds}), {host['cores']} cores {host['cpu']}, commit {host['commit']}"
        + (" (with local changes)" if host["dirty"] else "")
    )
    text = report.markdown(results, header)
    save(results, args, host, text)
    print(text)
    print(f"written to {RESULTS.relative_to(REPO)}", file=sys.stderr)
    return 1 if report.failures(results) else 0


def main_streams(count: int, proxy: str) -> int:
    """``--streams N``: the memory of N open streams (``benchmarks/streams.py``)."""
    result = in_temp_dir(lambda tmp: streams.run(count, tmp, proxy))
    if isinstance(result, int):
        return result
    host = machine()
    header = (
        f"Switchyard streams through {proxy}, {datetime.date.today().isoformat()}, "
        f"commit {host['commit']}"
    )
    text = streams.markdown(result, header)
    document = {"machine": host, "streams": result.as_dict(), "markdown": text}
    STREAMS_RESULTS.parent.mkdir(exist_ok=True)
    STREAMS_RESULTS.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    print(text)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
