"""The cluster identity read from a snapshot: a real etcd snapshot (plain and K3s's `.zip`), a
kine `state.db` with kine's own schema, and files that are neither."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path

from k3s_backup.formats.cluster_identity import read_identity
from k3s_backup.lab.lab import Lab
from k3s_backup.policy.identity import NO_KUBERNETES, ClusterIdentity
from tests.support.k8s_data import namespace

UID = "0d1e2f30-aaaa-4bbb-8ccc-000000000001"
CREATED = 1767225600  # 2026-01-01T00:00:00Z
KINE_SCHEMA = """CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name INTEGER,
    created INTEGER, deleted INTEGER, create_revision INTEGER, prev_revision INTEGER,
    lease INTEGER, value BLOB, old_value BLOB)"""


def test_an_etcd_snapshot_gives_kube_systems_uid_creation_and_object_count(
    lab: Lab, tmp_path: Path
) -> None:
    lab.etcd.put("/registry/namespaces/kube-system", namespace("kube-system", "old", CREATED))
    lab.etcd.put("/registry/namespaces/kube-system", namespace("kube-system", UID, CREATED))
    lab.etcd.put("/registry/configmaps/default/a", b"x")
    lab.etcd.put("/registry/configmaps/default/gone", b"x")
    lab.etcd.delete("/registry/configmaps/default/gone")
    lab.etcd.put("/bootstrap/abc", b"not an object")
    snapshot = lab.etcd.snapshot_save(tmp_path / "snap.db")
    expected = ClusterIdentity(UID, "2026-01-01T00:00:00Z", objects=2)
    assert read_identity(snapshot, tmp_path / "work") == expected
    zipped = tmp_path / "snap.db.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(snapshot, "snap.db")
    assert read_identity(zipped, tmp_path / "work") == expected
    assert list((tmp_path / "work").iterdir()) == []  # the unpacked entry is gone again


def test_an_etcd_without_kubernetes_data_has_no_identity(lab: Lab, tmp_path: Path) -> None:
    lab.etcd.put("/app/config", b"v1")
    snapshot = lab.etcd.snapshot_save(tmp_path / "snap.db")
    assert read_identity(snapshot, tmp_path) == NO_KUBERNETES


def test_kines_state_db_gives_the_newest_live_rows(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    db = sqlite3.connect(database)
    db.execute(KINE_SCHEMA)
    rows = [
        ("/registry/namespaces/kube-system", 0, namespace("kube-system", "first", CREATED)),
        ("/registry/namespaces/kube-system", 0, namespace("kube-system", UID, CREATED)),
        ("/registry/secrets/default/db", 0, b"k8s\x00secret"),
        ("/registry/secrets/default/old", 0, b"k8s\x00secret"),
        ("/registry/secrets/default/old", 1, b"k8s\x00secret"),  # deleted
        ("compact_rev_key", 0, b""),
    ]
    db.executemany("INSERT INTO kine(name, deleted, value) VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()
    assert read_identity(database, tmp_path) == ClusterIdentity(UID, "2026-01-01T00:00:00Z", 2)


def test_what_cannot_be_read_is_unknown_never_a_guess(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00" * 8192)
    assert read_identity(garbage, tmp_path) is None
    assert read_identity(tmp_path / "missing", tmp_path) is None
    not_kine = tmp_path / "other.db"
    db = sqlite3.connect(not_kine)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    assert read_identity(not_kine, tmp_path) is None
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"PK\x03\x04 not a zip")
    assert read_identity(bad_zip, tmp_path) is None
