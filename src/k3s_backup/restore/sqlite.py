"""The SQLite executor: K3s's single-server datastore (kine) has no cluster-reset; the restore
moves the old `state.db` *with* its `-wal` and `-shm` aside (SQLite would replay an old WAL into
the new database) and puts the verified copy in place."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from k3s_backup.errors import SnapshotError
from k3s_backup.plumbing.plan import Plan, Step
from k3s_backup.restore import recovery
from k3s_backup.restore.executor import Executor
from k3s_backup.restore.plan import step

SQLITE_FILES = ("state.db", "state.db-wal", "state.db-shm")


class SqliteExecutor(Executor):
    """Stop K3s, move the old database aside, put the verified copy in place, start K3s."""

    @property
    def aside(self) -> Path:
        return self.db / f"sqlite-old-{self.stamp}"

    def put_database(self) -> None:
        self.db.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.db, prefix=".state.db.")
        try:  # the copy is complete on the same filesystem before anything is moved
            with os.fdopen(fd, "wb") as out, self.snapshot.open("rb") as copy:
                shutil.copyfileobj(copy, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            present = [self.db / name for name in SQLITE_FILES if (self.db / name).exists()]
            if present:
                self.aside.mkdir(mode=0o700)
                for path in present:
                    os.replace(path, self.aside / path.name)
                self.state.old_data = self.aside
            os.replace(temp, self.db / "state.db")  # mkstemp made it 0600
        finally:
            Path(temp).unlink(missing_ok=True)
        self.state.reset_ran = True
        where = self.aside if present else "nothing: there was no previous database"
        self.report.info(f"Put the snapshot in {self.db / 'state.db'}; the previous one: {where}")

    def plan(self) -> Plan:
        if self.servers:
            raise SnapshotError(
                "a SQLite datastore serves a single server: drop --servers and"
                " [[restore.servers]] to restore it"
            )
        return super().plan()

    def restore_step(self) -> Step:
        text = (
            f"move {', '.join(SQLITE_FILES)} in {self.db} aside to {self.aside}, and put the"
            " verified copy in place as state.db"
        )
        return step("3", text, self.put_database)

    def recover_local(self) -> str:
        return recovery.sqlite_local(self)
