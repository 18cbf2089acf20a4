"""The `sqlite` source against a real SQLite database written to by another process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from k3s_backup.errors import SnapshotError
from k3s_backup.sources.sqlite import SqliteSource
from tests.support.cli_runner import invoke
from tests.support.keys import recovery_key_file

# A kine-like table; the writer commits one row per revision as fast as it can, and reports
# each committed revision on stdout, so the test knows what was committed before the backup.
WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("PRAGMA journal_mode=WAL")
revision = int(sys.argv[2])
while True:
    revision += 1
    db.execute("INSERT INTO kine(id, name, value) VALUES (?, ?, ?)",
               (revision, f"/registry/configmaps/default/cm-{revision}", b"x" * 512))
    print(revision, flush=True)
"""


def make_kine(path: Path, rows: int) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE kine (id INTEGER PRIMARY KEY, name TEXT, value BLOB)")
    db.executemany(
        "INSERT INTO kine VALUES (?, ?, ?)",
        [(i, f"/registry/configmaps/default/cm-{i}", b"x" * 512) for i in range(1, rows + 1)],
    )
    db.commit()
    db.close()


def k3s_tree(tmp_path: Path) -> Path:
    data_dir = tmp_path / "k3s"
    (data_dir / "server" / "db").mkdir(parents=True)
    make_kine(data_dir / "server" / "db" / "state.db", 2000)
    return data_dir


def test_online_copy_while_another_process_writes(tmp_path):
    data_dir = k3s_tree(tmp_path)
    database = data_dir / "server" / "db" / "state.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(database), "2000"],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        # Wait until the writer has committed rows of its own: the copy races a live writer.
        committed = [int(writer.stdout.readline()) for _ in range(50)]
        source = SqliteSource(database, tmp_path / "snapshots", "k3s", "node-1")
        snapshot = source.take("k3s-20261124-020000")
    finally:
        writer.kill()
        writer.wait()
    copy = sqlite3.connect(snapshot.path)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {row[0] for row in copy.execute("SELECT id FROM kine")}
    assert set(range(1, 2001)) <= ids
    assert set(committed) <= ids  # every row committed before the backup started
    assert snapshot.path.name.endswith("-node-1-" + str(snapshot.name.unix) + ".db")
    assert snapshot.path.stat().st_mode & 0o777 == 0o600


def test_missing_database_is_a_clear_error(tmp_path):
    source = SqliteSource(tmp_path / "state.db", tmp_path / "snapshots", "k3s", "n")
    with pytest.raises(SnapshotError, match="does not exist"):
        source.take("k3s-20261124-020000")


def test_auto_picks_sqlite_and_run_ships_a_checked_copy(tmp_path):
    data_dir = k3s_tree(tmp_path)
    config = tmp_path / "config.toml"
    (tmp_path / "usb").mkdir(mode=0o700)
    config.write_text(
        f'cluster_name = "home"\nnode_name = "pi"\nsnapshot_dir = "{tmp_path}/snapshots"\n'
        f'state_dir = "{tmp_path}/state"\nlog_file = "{tmp_path}/log"\n'
        f'recovery_key_file = "{recovery_key_file(tmp_path)}"\n'
        f'[k3s]\ndata_dir = "{data_dir}"\n'
        f'[[targets]]\nname = "usb"\ntype = "local"\npath = "{tmp_path}/usb"\n'
        'compression = "none"\n'  # the copy as stored is a plain SQLite database
    )
    result = invoke(["--config", str(config), "run"])
    assert result.code == 0, result.stderr
    assert "SQLite's backup API" in result.stdout and "integrity_check ok" in result.stdout
    [copy] = [p for p in (tmp_path / "usb").iterdir() if p.name.endswith(".db")]
    rows = sqlite3.connect(copy).execute("SELECT count(*) FROM kine").fetchone()[0]
    assert rows == 2000
    verified = invoke(["--config", str(config), "verify"])
    assert verified.code == 0, verified.stderr


def test_two_snapshots_in_the_same_second_both_keep_their_file(tmp_path):
    """The name has seconds: a second copy taken with the same prefix (a run right after
    another) gets the next unix time, never replacing the first, which may already be shipped."""
    database = tmp_path / "state.db"
    make_kine(database, 10)
    source = SqliteSource(database, tmp_path / "snapshots", "k3s", "node-1")
    first = source.take("k3s-20261123-020000")
    kept = first.path.read_bytes()
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO kine VALUES (11, '/registry/configmaps/default/late', x'00')")
    second = source.take("k3s-20261123-020000")
    assert second.path != first.path
    assert first.path.read_bytes() == kept
    assert second.name.unix > first.name.unix
    with sqlite3.connect(second.path) as copy:
        assert copy.execute("SELECT count(*) FROM kine").fetchone() == (11,)
