"""Command line: serve one fake upstream until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop
from aiohttp import web

from benchmarks.fake_upstream.app import create_app
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
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> FakeConfig:
    models = tuple(model.strip() for model in args.models.split(",") if model.strip())
    return FakeConfig(
        name=args.name, api_key=args.api_key, models=models, record_limit=args.record_limit
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
