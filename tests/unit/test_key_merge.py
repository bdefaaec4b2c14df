"""The merge rule for copies of one key (newest wins, revocation wins) and the snapshot file."""

import dataclasses
import itertools
import os
import stat

import orjson
import pytest

from router.auth.keyformat import hash_secret, new_secret
from router.auth.records import KeyRecord, newest
from router.auth.snapshot import KeySnapshot, load, parse_records, save

NOW = 1_700_000_000.0


def record(**changes):
    base = KeyRecord(
        id="abcdefgh2345", name="ci", created_at=NOW, secret_hash=hash_secret(new_secret())
    )
    return dataclasses.replace(base, **changes)


def test_a_write_is_the_next_version():
    first = record().written(NOW + 1)
    second = first.written(NOW + 2)
    assert (first.version, first.updated_at) == (1, NOW + 1)
    assert (second.version, second.updated_at) == (2, NOW + 2)


def test_the_newer_version_wins_either_way_round():
    old = record(version=3, updated_at=NOW + 50)
    new = dataclasses.replace(old, secret_hash="rotated", version=4, updated_at=NOW + 10)
    assert newest(old, new) is new
    assert newest(new, old) is new  # a later clock does not beat a later version


def test_the_write_time_breaks_a_tie_of_versions():
    a = record(version=2, updated_at=NOW + 1)
    b = dataclasses.replace(a, name="renamed", updated_at=NOW + 2)
    assert newest(a, b) is b
    assert newest(b, a) is b


def test_revocation_wins_over_any_version():
    revoked = record(version=1, state="revoked")
    rotated_later = record(version=9, updated_at=NOW + 100)
    assert newest(revoked, rotated_later) is revoked
    assert newest(rotated_later, revoked) is revoked


def test_a_tie_keeps_what_is_there_and_nothing_beats_nothing():
    current = record(version=2)
    same = dataclasses.replace(current)
    assert newest(current, same) is current
    assert newest(None, current) is current


def test_old_records_without_a_version_rank_by_their_creation():
    legacy = record()  # stored before records had a version
    assert legacy.rank == (False, 0, NOW)
    assert newest(legacy, legacy.written(NOW + 1)).version == 1


def test_merging_in_any_order_agrees():
    """A join: however copies arrive (restores, snapshots, imports), every router ends equal."""
    copies = [
        record(version=1, updated_at=NOW),
        record(version=3, updated_at=NOW + 3, name="three"),
        record(version=2, updated_at=NOW + 9, state="revoked"),
        record(version=3, updated_at=NOW + 4, name="three-later"),
    ]
    results = set()
    for order in itertools.permutations(copies):
        kept = None
        for copy in (*order, *order):  # twice: idempotent too
            kept = newest(kept, copy)
        results.add(kept)
    assert results == {copies[2]}  # the revoked copy, whatever its version


def changed(snapshot: KeySnapshot) -> bool:
    return snapshot.changed  # read afresh (mypy keeps an asserted attribute narrowed)


def test_snapshot_merge_counts_changes_and_never_rolls_back():
    current = record(version=5)
    snapshot = KeySnapshot([current])
    assert not snapshot.changed
    assert snapshot.merge([record(version=4)]) == 0
    assert snapshot.merge([current]) == 0
    assert not snapshot.changed
    revoked = dataclasses.replace(current, state="revoked", version=6)
    assert snapshot.merge([revoked]) == 1
    assert changed(snapshot)
    assert snapshot.records[current.id] is revoked


@pytest.mark.parametrize("form", ["document", "list", "lines"])
def test_parse_records_reads_every_form(form):
    records = [record(), dataclasses.replace(record(), id="bcdefgh23456", state="revoked")]
    if form == "document":
        data = KeySnapshot(records).to_json(prefix=None)
    elif form == "list":
        data = orjson.dumps([r.to_dict() for r in records])
    else:
        data = b"\n".join(r.to_json() for r in records) + b"\n\n"
    assert parse_records(data) == records


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'{"id": "abcdefgh2345"}\nnot json\n', "line 1"),
        (record().to_json() + b"\nnot json\n", "line 2"),
        (orjson.dumps({"object": "switchyard.keys", "records": [{"id": 1}]}), "record 1"),
        (orjson.dumps([{**record().to_dict(), "id": "../../etc"}]), "not a key id"),
    ],
)
def test_parse_records_names_what_is_wrong(data, where):
    with pytest.raises(ValueError, match=where):
        parse_records(data)


def test_save_is_private_and_load_reads_it_back(tmp_path):
    path = tmp_path / "state" / "keys-snapshot.json"
    snapshot = KeySnapshot([record()], epoch="e1")
    save(path, snapshot.to_json("sy:"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind
    loaded = load(path, "sy:")
    assert (loaded.records, loaded.epoch) == (snapshot.records, "e1")
    assert not loaded.changed


def test_load_ignores_another_prefix_and_a_missing_file(tmp_path):
    path = tmp_path / "keys-snapshot.json"
    assert len(load(path, "sy:")) == 0
    save(path, KeySnapshot([record()]).to_json("other:"))
    assert len(load(path, "sy:")) == 0
    assert path.exists()  # kept: it is another namespace's, not broken


def test_load_moves_a_corrupt_file_aside(tmp_path):
    path = tmp_path / "keys-snapshot.json"
    path.write_bytes(b'{"object": "switchyard.keys", "records": [')
    assert len(load(path, "sy:")) == 0
    assert not path.exists()
    assert (tmp_path / "keys-snapshot.json.corrupt").read_bytes().startswith(b'{"object"')
