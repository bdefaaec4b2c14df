"""``switchyard serve | check-config | demo | keys`` (also ``python -m router``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from router import cli_keys
from router.config import Config, ConfigError, load_config

# The server, the workers and the demo are imported by the commands that run them: ``keys`` and
# ``check-config`` stay off the proxy path and start fast (hg and pip defer their commands'
# imports the same way). tests/unit/test_layers.py holds ``keys`` to it.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchyard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the router")
    serve.add_argument(
        "--config",
        default=os.environ.get("SWITCHYARD_CONFIG"),
        help="config file (default: $SWITCHYARD_CONFIG, else the embedded demo config)",
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    check = commands.add_parser("check-config", help="validate a config file, list every problem")
    check.add_argument("config")
    demo = commands.add_parser("demo", help="two local fake backends and the router in front")
    demo.add_argument("--port", type=int, default=8080)
    cli_keys.add_parser(commands)
    return parser


def _with_overrides(config: Config, args: argparse.Namespace) -> Config:
    updates = {
        name: value
        for name in ("host", "port", "workers")
        if (value := getattr(args, name, None)) is not None
    }
    if not updates:
        return config
    server = config.server.model_validate({**config.server.model_dump(), **updates})
    return config.model_copy(update={"server": server})


def _load(path: str | None) -> Config:
    try:
        return load_config(path, os.environ)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(1) from None


def serve(config: Config) -> int:
    from router.server import run  # noqa: PLC0415 (see above)
    from router.startup import StartupError  # noqa: PLC0415

    try:
        if config.server.workers > 1:
            from router.workers import Supervisor  # noqa: PLC0415

            if config.redis is not None:  # once, before any worker starts and fails alike
                from router.redisconn import check_redis  # noqa: PLC0415 (only with a Redis)

                check_redis(config.redis)
            return Supervisor(config).run()
        run(config)
    except StartupError as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 1
    return 0


def check_config(path: str) -> int:
    config = _load(path)
    backends = sum(len(model.backends) for model in config.models.values())
    print(f"{path}: ok ({len(config.models)} models, {backends} backends, {len(config.keys)} keys)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.config)
    if args.command == "keys":
        return cli_keys.run(_load(args.config), args)
    from router.demo import run_demo  # noqa: PLC0415 (see the imports above)
    from router.logs import setup_logging  # noqa: PLC0415

    setup_logging()
    if args.command == "demo":
        return run_demo(args.port)
    return serve(_with_overrides(_load(args.config), args))
