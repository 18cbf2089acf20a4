"""Snapshots of K3s's SQLite datastore (kine's state.db, the single-node default).

SQLite's online backup API copies a consistent state while K3s keeps running and writing (WAL
mode): every row committed before the copy started is in it. The copy is checked with
`PRAGMA integrity_check` before it gets its final name.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from k3s_backup.errors import SnapshotError
from k3s_backup.formats.sqlite_db import check_sqlite
from k3s_backup.sources.base import TakenSnapshot
from k3s_backup.sources.staging import publish, staged_file, unlink_snapshot

BUSY_TIMEOUT_SECONDS = 60.0


def backup_database(database: Path, dest: Path) -> None:
    """Copy `database` to `dest` with SQLite's online backup API (readers and writers go on)."""
    if not database.is_file():
        raise SnapshotError(f"SQLite datastore {database} does not exist")
    try:
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            target = sqlite3.connect(dest)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise SnapshotError(f"SQLite backup of {database} failed: {exc}") from None


class SqliteSource:
    kind = "sqlite"

    def __init__(self, database: Path, snapshot_dir: Path, cluster: str, node: str) -> None:
        self.database = database
        self.snapshot_dir = snapshot_dir
        self.cluster = cluster
        self.node = node

    def take(self, prefix: str) -> TakenSnapshot:
        with staged_file(self.snapshot_dir) as staged:
            backup_database(self.database, staged)
            check = check_sqlite(staged)
            path, name = publish(
                staged, self.snapshot_dir, self.cluster, prefix, self.node, suffix=".db"
            )
        return TakenSnapshot(path, name, check, detail=f"from {self.database}")

    def delete(self, filename: str) -> str | None:
        unlink_snapshot(self.snapshot_dir, self.cluster, filename)
        return None
