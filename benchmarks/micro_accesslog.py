"""What one access line costs the router, written three ways (issue 11: buffer the access log).

``python -m benchmarks.micro_accesslog``: times :func:`router.logs.log_access` for a finished
chat request inside a running uvloop loop, with the lines going to a file:

- **before**: ``logging.StreamHandler`` (the handler before issue 11): a ``LogRecord``, then one
  ``write`` and one ``flush`` (a syscall) per line;
- **buffered, through logging**: ``LineHandler`` fed a ``LogRecord``: one syscall per ~4 KiB;
- **buffered, direct** (what ``log_access`` does): ``LineHandler`` fed the JSON line, no record.

Run it pinned (``taskset -c 0``) on a quiet machine; the minimum of several rounds is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import uvloop

from router.context import RequestContext
from router.logs import JsonFormatter, LineHandler, access_logger, log_access

LINES = 20_000
PATH = "/v1/chat/completions"
ROUNDS = 5


def finished_request() -> RequestContext:
    ctx = RequestContext("chat")
    ctx.key_id, ctx.model, ctx.route_model, ctx.backend = "bench", "gpt-4o", "gpt-4o", "nginx"
    ctx.status, ctx.attempts, ctx.outcome = 200, 1, "completed"
    ctx.upstream_request_id = "req_nginx_fixed_json"
    return ctx


async def per_line_us(write: Callable[[RequestContext], None]) -> float:
    ctx = finished_request()
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(LINES):
            write(ctx)
        best = min(best, time.perf_counter() - started)
        await asyncio.sleep(0.2)  # the flush timer runs, as it does between requests
    return 1e6 * best / LINES


def install(handler: logging.Handler) -> None:
    handler.setFormatter(JsonFormatter())
    logging.root.handlers[:] = [handler]
    logging.root.setLevel(logging.INFO)


async def measure(path: Path) -> dict[str, float]:
    with path.open("w") as stream:
        install(logging.StreamHandler(stream))
        before = await per_line_us(_log)  # not a LineHandler: log_access goes through logging
        install(LineHandler(stream))
        with _own_handler(logging.root.handlers[0]):
            buffered_logging = await per_line_us(_log)
        direct = await per_line_us(_log)
        logging.root.handlers[0].flush()
    return {
        "before (unbuffered, logging)": before,
        "buffered, through logging": buffered_logging,
        "buffered, direct (now)": direct,
    }


def _log(ctx: RequestContext) -> None:
    log_access(ctx, "POST", PATH)


@contextlib.contextmanager
def _own_handler(handler: logging.Handler) -> Iterator[None]:
    """``handler`` on the access logger itself: ``log_access`` then hands it a ``LogRecord``,
    as it did before it wrote lines directly."""
    access_logger.addHandler(handler)
    access_logger.propagate = False
    try:
        yield
    finally:
        access_logger.propagate = True
        access_logger.removeHandler(handler)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="switchyard-micro-") as tmp:
        results = uvloop.run(measure(Path(tmp) / "access.log"))
    print("| access line written | us per request |\n|---|---:|")
    for name, us in results.items():
        print(f"| {name} | {us:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
