"""The on-disk index of live keys extract plans from, read from a real etcd's snapshot and
checked against the in-memory pass (`EtcdDb.live`) over the same file."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from k3s_backup.formats import live_index
from k3s_backup.formats.etcd_db import EtcdDb
from k3s_backup.formats.live_index import LiveIndex
from k3s_backup.lab.etcd import EtcdServer


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    if shutil.which("etcd") is None:
        pytest.skip("needs Debian's etcd-server and etcd-client")
    root = tmp_path_factory.mktemp("live-index")
    with EtcdServer(root / "etcd") as etcd:
        etcd.put("/r/back", b"1")
        etcd.delete("/r/back")
        etcd.put("/r/back", b"2")  # deleted, then created again: alive
        etcd.put("/r/gone", b"1")
        etcd.delete("/r/gone")
        for version in range(3):
            etcd.put("/r/many", f"v{version}".encode())
        for name in ("b", "a", "c"):
            etcd.put(f"/r/x-{name}", name.encode())
        etcd.put("/other/key", b"outside the prefix")
        etcd.delete("/r/x-c")
        return etcd.snapshot_save(root / "snap.db")


@pytest.mark.parametrize("batch", [1, 2, 3, live_index.BATCH])
def test_the_index_holds_exactly_the_live_keys_and_their_newest_values(
    snapshot, batch, monkeypatch
):
    """Whatever the batches a tombstone and a later put fall into."""
    monkeypatch.setattr(live_index, "BATCH", batch)
    with EtcdDb(snapshot) as db, LiveIndex() as index:
        expected = {key: live.revision_key for key, live in db.live(b"/r/").keys.items()}
        assert index.load("t", db, b"/r/") == len(expected) == 4
        rows = list(index.ordered("t"))
        values = {key: db.value_at(revision).value for key, revision in rows}
    assert dict(rows) == expected
    assert [key for key, _ in rows] == sorted(expected)  # one rank: key order
    assert values[b"/r/back"] == b"2" and values[b"/r/many"] == b"v2"


def test_rows_come_by_rank_then_key_and_without_another_tables_keys(snapshot):
    def rank(key: bytes) -> int | None:
        return None if key == b"/r/many" else 0 if key.startswith(b"/r/x-") else 1

    with EtcdDb(snapshot) as db, LiveIndex() as index:
        assert index.load("ranked", db, b"/r/", rank) == 3
        index.load("some", db, b"/r/x-a")
        ranked = [key for key, _ in index.ordered("ranked")]
        remaining = [key for key, _ in index.ordered("ranked", without="some")]
    assert ranked == [b"/r/x-a", b"/r/x-b", b"/r/back"]
    assert remaining == [b"/r/x-b", b"/r/back"]


def test_the_index_file_is_private_and_removed_on_close(snapshot, tmp_path):
    with EtcdDb(snapshot) as db, LiveIndex(tmp_path) as index:
        index.load("t", db, b"/r/")
        (folder,) = tmp_path.iterdir()
        files = list(folder.iterdir())
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert list(tmp_path.iterdir()) == []
