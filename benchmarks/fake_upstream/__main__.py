"""Command line: serve one fake upstream until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop
from aiohttp import web

from benchmarks.fake_upstream.app import create_app
from benchmarks.fake_upstream.prefix_cache import OPENAI_BLOCK_TOKENS, OPENAI_MIN_TOKENS
from benchmarks.fake_upstream.quota import HEADER_MODES
from benchmarks.fake_upstream.state import DEFAULT_MODELS, FakeConfig

# In-flight streams get this long to finish on shutdown; a fake need not be patient.
_SHUTDOWN_TIMEOUT = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fake_upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--name", default="fake", help='answers read "<name> says: ..."')
    parser.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated ids")
    parser.add_argument(
        "--record-limit", type=int, default=10_000, help="requests kept for /_fake/requests"
    )
    _account_args(parser)
    return parser.parse_args(argv)


def _account_args(parser: argparse.ArgumentParser) -> None:
    """The provider account this fake plays: quota, store and prefix cache (see their modules)."""
    group = parser.add_argument_group("account")
    group.add_argument("--rpm", type=int, default=None, help="requests per minute (default: off)")
    group.add_argument("--tpm", type=int, default=None, help="tokens per minute (default: off)")
    group.add_argument(
        "--quota-headers", choices=HEADER_MODES, default="openai", help="x-ratelimit-* style"
    )
    group.add_argument(
        "--quota-window",
        type=float,
        default=60.0,
        help="seconds of quota a bucket holds (default 60; 1 makes --rpm 600 a 10 req/s account)",
    )
    group.add_argument(
        "--store-limit", type=int, default=10_000, help="responses and conversations kept"
    )
    group.add_argument(
        "--background-seconds", type=float, default=1.0, help="a background response's run time"
    )
    group.add_argument(
        "--cache-blocks", type=int, default=0, help="prefix cache size in blocks (0: off)"
    )
    group.add_argument("--cache-min-tokens", type=int, default=OPENAI_MIN_TOKENS)
    group.add_argument("--cache-block-tokens", type=int, default=OPENAI_BLOCK_TOKENS)


def config_from(args: argparse.Namespace) -> FakeConfig:
    models = tuple(model.strip() for model in args.models.split(",") if model.strip())
    return FakeConfig(
        name=args.name,
        api_key=args.api_key,
        models=models,
        record_limit=args.record_limit,
        rpm=args.rpm,
        tpm=args.tpm,
        quota_headers=args.quota_headers,
        quota_window=args.quota_window,
        store_limit=args.store_limit,
        background_seconds=args.background_seconds,
        cache_blocks=args.cache_blocks,
        cache_min_tokens=args.cache_min_tokens,
        cache_block_tokens=args.cache_block_tokens,
    )


async def serve(args: argparse.Namespace) -> None:
    stop = _stop_on_signals()  # before binding, so an early Ctrl-C also ends cleanly
    runner = web.AppRunner(
        create_app(config_from(args)),
        handler_cancellation=True,  # a client disconnect cancels the handler: tests count it
        access_log=None,
        shutdown_timeout=_SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port).start()
        host, port = runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        print(f"READY http://{host}:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def main(argv: list[str] | None = None) -> None:
    uvloop.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
