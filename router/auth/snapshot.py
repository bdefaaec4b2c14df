"""A router's own copy of every key record: in memory, and in a file that outlives the process.

The copy holds what the store holds (records with hashed secrets only, revoked keys included)
plus the store's epoch marker as last seen. Records are merged with
:func:`~router.auth.records.newest`, so the copy never rolls a key back nor un-revokes it,
whatever order the store's answers, other routers' restores and the file arrive in.

The file is written the way SQLite and etcd write their own state: a temporary file in the same
directory, flushed and fsynced, then renamed over the old one (rename is atomic on POSIX), so a
crash leaves the old file or the new one, never half of one. It is created mode 0600: the
hashes are not secrets, but a stolen hash lets an attacker check a guessed key offline.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from router.auth.records import KeyRecord, newest

log = logging.getLogger(__name__)

FORMAT = "switchyard.keys"
FORMAT_VERSION = 1


class KeySnapshot:
    """Key records by id, merged newest-wins, with the store's epoch as last seen."""

    def __init__(self, records: Iterable[KeyRecord] = (), epoch: str | None = None) -> None:
        self.records: dict[str, KeyRecord] = {}
        self.epoch = epoch
        self.changed = False
        """Set by every change, cleared by whoever saves the snapshot."""
        self.merge(records)
        self.changed = False

    def __repr__(self) -> str:
        return f"<KeySnapshot {len(self.records)} keys epoch={self.epoch!r}>"

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.records

    def __iter__(self) -> Iterator[KeyRecord]:
        return iter(self.records.values())

    def merge(self, records: Iterable[KeyRecord]) -> int:
        """Keep the newest copy of each record; how many records changed."""
        changed = 0
        for record in records:
            current = self.records.get(record.id)
            kept = newest(current, record)
            if kept is not current and kept != current:
                self.records[record.id] = kept
                changed += 1
        self.changed |= changed > 0
        return changed

    def set_epoch(self, epoch: str) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self.changed = True

    def to_json(self, prefix: str | None) -> bytes:
        """The file's contents: the records (hashes included) and the store ``prefix`` they
        belong to (None in an export: any store may import it)."""
        data = {
            "object": FORMAT,
            "v": FORMAT_VERSION,
            "prefix": prefix,
            "epoch": self.epoch,
            "saved_at": time.time(),
            "records": list(self.records.values()),  # orjson writes dataclasses as objects
        }
        return orjson.dumps(data)


def parse_records(data: bytes) -> list[KeyRecord]:
    """The records of a snapshot or an export: a ``switchyard.keys`` document, a JSON list, or
    JSON lines (one record each). Raises ValueError naming the record or line that is wrong."""
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and "records" in whole:
        return _records(_document(data))
    if isinstance(whole, list):
        return [_parse(raw, f"record {i + 1}") for i, raw in enumerate(whole)]
    lines = enumerate(data.splitlines(), start=1)
    return [_parse(_loads(line, n), f"line {n}") for n, line in lines if line.strip()]


def load(path: Path, prefix: str) -> KeySnapshot:
    """The snapshot saved at ``path`` for this store ``prefix``; empty if there is none.

    A file that cannot be read is moved aside (``.corrupt``: it may be the only copy of some
    keys, for an operator to repair and ``keys import``) and the router starts empty.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return KeySnapshot()
    try:
        document = _document(data)
        records = _records(document)
    except ValueError as exc:
        aside = path.with_name(f"{path.name}.corrupt")
        os.replace(path, aside)
        log.error("key snapshot unreadable (%s); moved to %s", exc, aside)
        return KeySnapshot()
    if document.get("prefix") != prefix:
        # Another namespace's keys (a changed redis.prefix): not this store's to restore.
        log.warning("key snapshot %s is for another redis.prefix; not used", path)
        return KeySnapshot()
    epoch = document.get("epoch")
    return KeySnapshot(records, epoch if isinstance(epoch, str) else None)


def save(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 (blocking: run it in a thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def _document(data: bytes) -> dict[str, Any]:
    document = _loads(data, None)
    if not isinstance(document, dict) or document.get("object") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    if not isinstance(document.get("records"), list):
        raise ValueError("records: expected a list")
    return document


def _records(document: dict[str, Any]) -> list[KeyRecord]:
    return [_parse(raw, f"record {i + 1}") for i, raw in enumerate(document["records"])]


def _loads(data: bytes, line: int | None) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        where = "" if line is None else f" on line {line}"
        raise ValueError(f"malformed JSON{where}") from None


def _parse(raw: object, where: str) -> KeyRecord:
    try:
        return KeyRecord.from_dict(raw)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
