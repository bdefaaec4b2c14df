"""The router's CPU per request in instructions: a measure that a busy machine does not move.

``python -m benchmarks.instructions [--requests 2000] [--baseline DIR]`` starts nginx and the
router as ``run.py`` does (key auth, metrics and the access log on), but the router under
valgrind's callgrind with instrumentation off. After a warm-up it turns instrumentation on,
sends a fixed number of requests over 16 keep-alive connections (chat JSON, then chat SSE),
turns it off again and reads the instructions the router executed. Instructions per request are
repeatable to well under 1% whatever else the machine runs (wall-clock req/s on a shared
2-core machine moves by 30%), so small changes to the request path can be priced while other
work goes on. Seconds still decide (``benchmarks.run`` on a quiet machine): instructions do not
see cache misses or syscall costs. With ``--baseline DIR`` another checkout's router (its own
``.venv``) is measured the same way, and the difference printed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

from benchmarks.procs import Processes
from benchmarks.targets import AUTH_HEADER, REPO, Target, request_body, start_nginx, start_router

_TOTALS = re.compile(rb"^(?:totals|summary): (\d+)", re.MULTILINE)
CONNECTIONS = 16
WARMUP = 200


async def _send(target: Target, stream: bool, count: int) -> None:
    """``count`` requests over CONNECTIONS keep-alive connections; raise on any non-200."""
    body = request_body(stream)
    headers = {"Content-Type": "application/json", "Authorization": AUTH_HEADER}
    url = target.url(stream)
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        left = [count]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{target.title}: status {response.status}")

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def _measure(target: Target, out: Path, stream: bool, count: int) -> int:
    asyncio.run(_send(target, stream, WARMUP))
    for old in out.parent.glob(out.name + "*"):
        old.unlink()
    _control("-z", str(target.pid))  # zero the counters: the warm-up is not counted
    _control("-i", "on", str(target.pid))
    asyncio.run(_send(target, stream, count))
    _control("-i", "off", str(target.pid))
    _control("-d", str(target.pid))
    totals = 0
    for dump in out.parent.glob(out.name + "*"):
        totals += sum(int(m) for m in _TOTALS.findall(dump.read_bytes()))
    return totals


def measure(
    workdir: Path, checkout: Path | None, count: int, variant: str = "", name: str = ""
) -> dict[str, float]:
    """Instructions per request of one checkout's router (``variant`` as in
    :func:`~benchmarks.targets.start_router`), chat JSON and chat SSE."""
    workdir = workdir / (name or ("base" if checkout else "this"))
    workdir.mkdir()
    out = workdir / "callgrind.out"
    wrapper = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
    ]
    with Processes(workdir, cwd=REPO) as procs:
        upstream = start_nginx(procs, workdir)
        router = start_router(
            procs,
            upstream,
            workdir,
            variant=variant,
            checkout=checkout,
            wrapper=wrapper,
            ready_timeout=600,
        )
        return {
            scenario: _measure(router, out, stream, count) / count
            for scenario, stream in (("chat", False), ("stream", True))
        }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per scenario")
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="another checkout to compare")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep callgrind's files here (callgrind_annotate)"
    )
    variants = ("", "quota", "quota-untracked", "affinity", "nometrics", "noaccess", "bare")
    parser.add_argument("--variant", choices=variants, default="", help="this router's variant")
    parser.add_argument(
        "--against",
        choices=variants,
        help="compare with this checkout's router in that variant (e.g. quota against "
        "quota-untracked: the same x-ratelimit-* headers, tracked and ignored)",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("needs valgrind (Debian's valgrind package)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="switchyard-instr-") as tmp:
        this = measure(Path(tmp), None, args.requests, args.variant)
        base = None
        if args.baseline:
            base = measure(Path(tmp), args.baseline, args.requests)
        elif args.against is not None:
            base = measure(Path(tmp), None, args.requests, args.against, name="against")
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for dump in Path(tmp).glob("*/callgrind.out*"):
                shutil.copy(dump, args.keep / f"{dump.parent.name}-{dump.name}")
    print("| scenario | instructions/request | " + ("baseline | change |" if base else ""))
    print("|---|---:|" + ("---:|---:|" if base else ""))
    for scenario, value in this.items():
        row = f"| {scenario} | {value:,.0f} |"
        if base:
            row += f" {base[scenario]:,.0f} | {100 * (value / base[scenario] - 1):+.1f}% |"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
