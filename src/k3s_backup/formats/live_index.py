"""The keys alive at a snapshot's latest revision, indexed in a temporary file, not in memory.

Which keys are alive is known only after the whole history is read (etcd's bbolt file orders
revisions, not keys: a key's newest put can be followed by its tombstone anywhere later), so a
pass must remember every key it has seen. Held in a dict that costs ~230 bytes per object: 37
MiB more for a 1.2 GiB snapshot than for a 300 MiB one. Here it goes to a SQLite database in a
private temporary directory (0700, the file 0600: keys name Secrets), with a small page cache,
so memory stays flat in the snapshot's size; the file is removed on close.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from k3s_backup.formats.etcd_db import EtcdDb, LiveState, value_head
from k3s_backup.plumbing.closable import Closable

BATCH = 4096  # puts and deletes written together: memory for a batch, not for the history
CACHE_KIB = 4096  # SQLite's page cache; its sorter spills past it
# A key's place in the final order (smaller first), or None to leave it out.
Ranker = Callable[[bytes], int | None]
# A value's tag from its first bytes (EtcdDb.live's classify), stored beside its key.
Classifier = Callable[[bytes], str]
Row = tuple[bytes, bytes, int, str]  # key, revision key, rank, tag


def _everything(_key: bytes) -> int | None:
    return 0


class LiveIndex(Closable):
    """Named tables of live keys (key -> revision key, rank), each loaded from one EtcdDb."""

    def __init__(self, directory: Path | None = None) -> None:
        self._temp = tempfile.TemporaryDirectory(prefix="k3s-backup-index-", dir=directory)
        path = Path(self._temp.name) / "live.sqlite"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{CACHE_KIB}"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("PRAGMA temp_store=FILE")

    def close(self) -> None:
        self._db.close()
        self._temp.cleanup()

    def load(
        self,
        table: str,
        db: EtcdDb,
        prefix: bytes,
        rank: Ranker = _everything,
        classify: Classifier | None = None,
        seen: LiveState | None = None,
    ) -> int:
        """Index into `table` (a new one) every key under `prefix` alive at `db`'s latest
        revision that `rank` keeps, with `classify`'s tag of its value; returns how many.
        One pass decoding only keys (and value heads for `classify`); `seen` counts history."""
        self._db.execute(
            f"CREATE TABLE {table} (key BLOB PRIMARY KEY, revision BLOB, rank INTEGER, tag TEXT)"
            " WITHOUT ROWID"
        )
        puts: dict[bytes, Row] = {}
        deletes: list[tuple[bytes]] = []
        self._db.execute("BEGIN")
        for key, raw_key, tombstone, raw_value in db.key_history(prefix, seen):
            if tombstone:
                puts.pop(key, None)
                deletes.append((key,))
            elif (place := rank(key)) is not None:
                tag = classify(value_head(raw_key, raw_value)) if classify else ""
                puts[key] = (key, raw_key, place, tag)
            if len(puts) + len(deletes) >= BATCH:
                self._flush(table, puts, deletes)
        self._flush(table, puts, deletes)
        self._db.execute("COMMIT")
        return int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def _flush(self, table: str, puts: dict[bytes, Row], deletes: list[tuple[bytes]]) -> None:
        # Deletes first: a key put again after its tombstone in this batch is in `puts`, and
        # one whose last entry is the tombstone was popped from it.
        self._db.executemany(f"DELETE FROM {table} WHERE key = ?", deletes)
        self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?)", puts.values())
        puts.clear()
        deletes.clear()

    def tagged(self, table: str) -> Iterator[tuple[bytes, bytes, str]]:
        """(key, revision key, tag) of `table` in key order, a row at a time."""
        for key, revision, tag in self._db.execute(
            f"SELECT key, revision, tag FROM {table} ORDER BY key"
        ):
            yield bytes(key), bytes(revision), str(tag)

    def ordered(self, table: str, without: str | None = None) -> Iterator[tuple[bytes, bytes]]:
        """(key, revision key) of `table`, by rank then key, leaving out the keys of the
        table `without`; read a row at a time."""
        absent = f" WHERE key NOT IN (SELECT key FROM {without})" if without else ""
        cursor = self._db.execute(f"SELECT key, revision FROM {table}{absent} ORDER BY rank, key")
        for key, revision in cursor:
            yield bytes(key), bytes(revision)
