"""``switchyard keys create | list | rotate | revoke``: the admin API's key operations; and
``export | import``, a backup of the key records (hashes, never secrets).

It opens the store the router uses (Redis if the config has one, else the SQLite file, resolved
from the current directory as ``serve`` resolves it) and works through a :class:`KeyService`,
so a running router on the same store sees every change within a second. It prints JSON on
stdout; ``create`` and ``rotate`` print the full key, which is shown that once. An unknown id is
a message on stderr and exit status 1; an invalid option, status 2 (as argparse's own).

``import`` merges by the stores' own rule (:func:`~router.auth.records.newest`): a record is
written only if the store has no newer copy, a revoked key stays revoked, and importing the
same file twice writes nothing the second time. It reads its own exports and the snapshot file
a router keeps (``keys-snapshot.json``), so that file is a backup too.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from router.auth.key_fields import key_fields
from router.auth.keyformat import is_key_id
from router.auth.keystore import store_errors
from router.auth.open_store import open_store
from router.auth.service import DEFAULT_GRACE_SECONDS, KeyService
from router.auth.snapshot import KeySnapshot, parse_records, save
from router.config import Config
from router.errors import InvalidRequest

if TYPE_CHECKING:
    import redis.asyncio

REDIS_TIMEOUT_SECONDS = 5.0  # a shell command should fail, not hang, on an unreachable Redis

Command = Callable[[KeyService, argparse.Namespace], Awaitable[int]]


class _Failed(Exception):
    """The operation cannot be done; the message goes to stderr."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys`` and its subcommands to the ``switchyard`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=os.environ.get("SWITCHYARD_CONFIG"),
        help="config file (default: $SWITCHYARD_CONFIG, else the embedded demo config)",
    )
    keys = commands.add_parser("keys", help="create, list, rotate and revoke stored API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[common], help="a new key, printed once")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument("--models", help="comma-separated model names or patterns (default: *)")
    for limit in ("rpm", "tpm", "concurrency"):
        create.add_argument(f"--{limit}", type=_count, help=f"{limit} limit (default: none)")
    create.add_argument(
        "--expires-in",
        type=_seconds,
        metavar="SECONDS",
        help="expire this long from now (default: never)",
    )
    actions.add_parser("list", parents=[common], help="every key, revoked included")
    rotate = actions.add_parser("rotate", parents=[common], help="a new secret, printed once")
    rotate.add_argument("id")
    rotate.add_argument(
        "--grace",
        type=_seconds,
        default=DEFAULT_GRACE_SECONDS,
        metavar="SECONDS",
        help="how long the old secret keeps working (default: a day)",
    )
    revoke = actions.add_parser("revoke", parents=[common], help="refuse the key everywhere")
    revoke.add_argument("id")
    _add_backup_parsers(actions, common)


def _add_backup_parsers(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    export = actions.add_parser(
        "export", parents=[common], help="every key record (hashes, never secrets): a backup"
    )
    export.add_argument("--format", choices=("jsonl", "json"), default="jsonl")
    export.add_argument(
        "--output", "-o", metavar="FILE", help="write FILE (mode 0600) instead of stdout"
    )
    merge = actions.add_parser(
        "import", parents=[common], help="merge a backup in: newer records win, none un-revoked"
    )
    merge.add_argument(
        "file", help="an export (JSON lines or JSON), a router's keys-snapshot.json, or -"
    )


def run(config: Config, args: argparse.Namespace) -> int:
    """Run ``args.action`` against the config's key store; the process exit status."""
    try:
        return asyncio.run(_run(config, _COMMANDS[args.action], args))
    except InvalidRequest as exc:
        print(f"switchyard: {exc.message}", file=sys.stderr)
        return 2
    except _Failed as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 1
    except store_errors() as exc:
        print(f"switchyard: the key store is unavailable: {exc}", file=sys.stderr)
        return 1


async def _run(config: Config, command: Command, args: argparse.Namespace) -> int:
    async with open_service(config) as service:
        return await command(service, args)


@asynccontextmanager
async def open_service(config: Config) -> AsyncIterator[KeyService]:
    """A :class:`KeyService` over the store the router would open for ``config``."""
    client: redis.asyncio.Redis | None = None
    if config.redis is not None:
        import redis.asyncio  # noqa: PLC0415 (only with a Redis: `serve` imports this module)

        client = redis.asyncio.Redis.from_url(
            config.redis.url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
    store = open_store(config, client)
    try:
        yield KeyService(store)
    finally:
        await store.close()
        if client is not None:
            await client.aclose()


# --- the commands ----------------------------------------------------------------------------


async def _create(service: KeyService, args: argparse.Namespace) -> int:
    # The admin API's own checks, so both front doors accept exactly the same keys.
    fields = key_fields(_create_body(args), partial=False)
    record, key = await service.create(**fields)
    _print({**record.public(), "key": key})
    return 0


def _create_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"name": args.name}
    if args.models is not None:
        body["models"] = [model.strip() for model in args.models.split(",") if model.strip()]
    limits = {name: getattr(args, name) for name in ("rpm", "tpm", "concurrency")}
    body["limits"] = {name: value for name, value in limits.items() if value is not None}
    if args.expires_in is not None:
        body["expires_at"] = time.time() + args.expires_in
    return body


async def _list(service: KeyService, args: argparse.Namespace) -> int:
    records = await service.list()
    _print({"object": "list", "data": [record.public() for record in records]})
    return 0


async def _rotate(service: KeyService, args: argparse.Namespace) -> int:
    rotated = await service.rotate(_key_id(args), grace_seconds=args.grace)
    if rotated is None:
        if await service.get(args.id) is None:
            raise _Failed(f"no API key has the id {args.id}")
        raise _Failed(f"key {args.id} is revoked; create a new key instead")
    record, key = rotated
    _print({**record.public(), "key": key})
    return 0


async def _revoke(service: KeyService, args: argparse.Namespace) -> int:
    record = await service.revoke(_key_id(args))
    if record is None:
        raise _Failed(f"no API key has the id {args.id}")
    _print(record.public())
    return 0


async def _export(service: KeyService, args: argparse.Namespace) -> int:
    records = await service.list()
    if args.format == "json":
        data = KeySnapshot(records).to_json(prefix=None)
    else:
        data = b"".join(record.to_json() + b"\n" for record in records)
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        await asyncio.to_thread(save, Path(args.output), data)
    return 0


async def _import(service: KeyService, args: argparse.Namespace) -> int:
    try:
        source = sys.stdin.buffer.read if args.file == "-" else Path(args.file).read_bytes
        data = await asyncio.to_thread(source)
    except OSError as exc:
        raise _Failed(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        records = parse_records(data)
    except ValueError as exc:
        raise _Failed(f"{args.file}: {exc}; nothing imported") from None
    written = await service.merge(records)
    _print({"object": "import", "records": len(records), "written": written})
    return 0


_COMMANDS: dict[str, Command] = {
    "create": _create,
    "list": _list,
    "rotate": _rotate,
    "revoke": _revoke,
    "export": _export,
    "import": _import,
}


# --- helpers ---------------------------------------------------------------------------------


def _key_id(args: argparse.Namespace) -> str:
    key_id: str = args.id
    if not is_key_id(key_id):  # not echoed: it may be a full key pasted by mistake
        raise _Failed("no API key has this id (an id is 12 characters, as `keys list` shows)")
    return key_id


def _print(data: object) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer, 0 or more, not {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more, not {text!r}")
    return value
