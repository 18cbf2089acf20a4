"""Integrity of a SQLite copy of K3s's kine datastore (state.db)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from k3s_backup.errors import SnapshotError
from k3s_backup.formats.etcd_snapshot import SnapshotCheck
from k3s_backup.plumbing.streams import sha256_stream

SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite(path: Path) -> SnapshotCheck:
    """The file is a SQLite database that passes `PRAGMA integrity_check`."""
    with path.open("rb") as stream:
        if stream.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise SnapshotError(f"{path}: not a SQLite database")
        stream.seek(0)
        digest = sha256_stream(stream)
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        # what integrity_check reports quotes names from the file itself: any bytes
        connection.text_factory = lambda data: data.decode(errors="replace")
        try:
            result = [row[0] for row in connection.execute("PRAGMA integrity_check")]
            page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
        finally:
            connection.close()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # its message quotes the file
        raise SnapshotError(f"{path}: SQLite cannot read it: {exc}") from None
    if result != ["ok"]:
        raise SnapshotError(f"{path}: integrity_check failed: {'; '.join(result[:5])}")
    return SnapshotCheck(size=path.stat().st_size, sha256=digest, page_size=page_size, txid=0)
