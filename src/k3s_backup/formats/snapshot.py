"""Check any snapshot file we make, whatever its form, by its name's suffix."""

from __future__ import annotations

from pathlib import Path

from k3s_backup.formats.etcd_snapshot import SnapshotCheck, check_file
from k3s_backup.formats.sqlite_db import check_sqlite


def check_snapshot(path: Path) -> SnapshotCheck:
    if path.name.endswith(".db"):
        return check_sqlite(path)
    return check_file(path)
