"""The SQLite check on damaged databases (regressions found by tests/fuzz)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from k3s_backup.errors import SnapshotError
from k3s_backup.formats.sqlite_db import check_sqlite


def test_a_table_name_that_is_not_utf8_is_damage_not_a_traceback(tmp_path: Path) -> None:
    # Found by a 10-minute fuzzing run: integrity_check's report quotes the damaged schema's
    # names, which sqlite3 decoded as UTF-8 (UnicodeDecodeError escaped check_sqlite).
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE kine (id INTEGER PRIMARY KEY, name TEXT, value BLOB)")
    db.executemany(
        "INSERT INTO kine VALUES (?, ?, ?)", [(i, f"/k/{i}", b"v" * 64) for i in range(30)]
    )
    db.commit()
    db.close()
    data = path.read_bytes()
    assert data.count(b"tablekinekine") == 1
    path.write_bytes(data.replace(b"tablekinekine", b"table\x80inekine"))
    try:
        check_sqlite(path)
    except SnapshotError as exc:
        assert str(path) in str(exc)
    else:
        pytest.fail("a database whose schema names its table in invalid UTF-8 passed the check")
