"""Fuzz: the bbolt reader and etcd's MVCC store on it (formats/bbolt, formats/etcd_db), the
way `inspect`, `diff` and `drill` read a snapshot."""

from __future__ import annotations

import contextlib
from pathlib import Path

from k3s_backup.errors import SnapshotError
from k3s_backup.formats import kubernetes
from k3s_backup.formats.etcd_db import EtcdDb
from tests.fuzz.harness import fix_snapshot, fuzz_target, mutated, seed, workdir

SNAPSHOT = seed("etcd.snapshot")
_WORKDIR = workdir()


def read_all(path: Path) -> None:
    """Every pass inspect and diff make, each value decoded."""
    with EtcdDb(path) as db:
        state = db.live(b"", lambda head: kubernetes.decode_value(head).encoding)
        db.bucket_entries(), db.compact_revision(), db.consistent_index()
        for live in list(state.keys.values())[:20]:
            kubernetes.decode_value(db.value_at(live.revision_key).value)
        db.get(b"/registry/pods/default/web-2")
        for _revision, _kv in db.history():
            pass


@fuzz_target(mutated([SNAPSHOT], fix=fix_snapshot), examples=300)
def test_etcd_db(data: bytes) -> None:
    path = _WORKDIR / "snapshot.db"
    path.write_bytes(data)
    with contextlib.suppress(SnapshotError):  # BoltError included: the only way to refuse
        read_all(path)
