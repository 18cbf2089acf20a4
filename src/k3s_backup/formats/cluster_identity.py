"""The cluster identity a snapshot holds (policy/identity.py): the `kube-system` namespace's UID
and creation time, and the number of Kubernetes objects, read from the file itself.

Works on an etcd snapshot (plain, or K3s's one-entry `.zip`), on etcd's live `member/snap/db`,
and on a SQLite (kine) `state.db`. A file that cannot be read gives None (unknown), never a guess.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import zipfile
import zlib
from pathlib import Path

from k3s_backup.errors import BackupError
from k3s_backup.formats.etcd_db import EtcdDb, decode_key_value
from k3s_backup.formats.kubernetes import decode_value, parse_key
from k3s_backup.formats.protowire import ProtoError
from k3s_backup.formats.sqlite_db import SQLITE_MAGIC
from k3s_backup.policy.identity import NO_KUBERNETES, ClusterIdentity

KUBE_SYSTEM = "/registry/namespaces/kube-system"
REGISTRY = b"/registry/"
# Rows of kine's table that are live: the newest row of each name, unless it is a deletion.
_KINE_LIVE = """
    SELECT k.name, k.value FROM kine AS k
    JOIN (SELECT name, MAX(id) AS id FROM kine WHERE name LIKE '/registry/%' GROUP BY name) AS n
      ON k.id = n.id
    WHERE k.deleted = 0
"""


def _identity(kube_system: bytes | None, objects: int) -> ClusterIdentity:
    if kube_system is None:
        return NO_KUBERNETES
    stored = decode_value(kube_system)
    if not stored.uid:  # encrypted at rest or undecodable: the namespace is there, its UID not
        return NO_KUBERNETES
    return ClusterIdentity(stored.uid, stored.creation_timestamp or "", objects)


def _from_etcd(path: Path) -> ClusterIdentity:
    with EtcdDb(path) as db:
        alive, kube_system = db.census(REGISTRY, KUBE_SYSTEM.encode())
    objects = sum(1 for key in alive if parse_key(key.decode(errors="replace")))
    value = decode_key_value(kube_system).value if kube_system is not None else None
    return _identity(value, objects)


def _from_sqlite(path: Path) -> ClusterIdentity:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute(_KINE_LIVE).fetchall()
    finally:
        connection.close()
    values = {str(name): bytes(value or b"") for name, value in rows}
    objects = sum(1 for name in values if parse_key(name))
    return _identity(values.get(KUBE_SYSTEM), objects)


def _from_zip(path: Path, workdir: Path) -> ClusterIdentity:
    """K3s's `.zip`: its one entry unpacked in a private temporary dir under `workdir` (never
    beside it: K3s takes every file in its snapshot dir for a snapshot)."""
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="identity-", dir=workdir) as temp:
        with zipfile.ZipFile(path) as archive:
            [entry] = archive.infolist()
            plain = Path(temp) / "snapshot"
            with archive.open(entry) as member, plain.open("wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)
        return _from_etcd(plain)


def read_identity(path: Path, workdir: Path) -> ClusterIdentity | None:
    """The identity in the snapshot (or live database) at `path`; None if it cannot be read.
    `workdir` takes the unpacked entry of a `.zip` while it is read."""
    try:
        with path.open("rb") as head:
            magic = head.read(len(SQLITE_MAGIC))
        if magic == SQLITE_MAGIC:
            return _from_sqlite(path)
        if path.name.endswith(".zip"):
            return _from_zip(path, workdir)
        return _from_etcd(path)
    except (
        OSError,
        BackupError,  # BoltError included
        ProtoError,
        sqlite3.Error,
        zipfile.BadZipFile,
        zlib.error,
        ValueError,
        EOFError,
    ):
        return None


def live_database(data_dir: Path) -> Path | None:
    """The file the running datastore keeps its data in: etcd's bbolt file or kine's SQLite."""
    db = data_dir / "server" / "db"
    for candidate in (db / "etcd" / "member" / "snap" / "db", db / "state.db"):
        if candidate.is_file():
            return candidate
    return None
