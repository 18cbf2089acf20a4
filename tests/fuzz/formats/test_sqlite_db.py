"""Fuzz: the integrity check of a SQLite (kine) snapshot (formats/sqlite_db)."""

from __future__ import annotations

import contextlib

from k3s_backup.errors import SnapshotError
from k3s_backup.formats.sqlite_db import check_sqlite
from tests.fuzz.harness import fuzz_target, mutated, seed, workdir

_WORKDIR = workdir()


@fuzz_target(mutated([seed("kine.db")]), examples=200)
def test_sqlite(data: bytes) -> None:
    path = _WORKDIR / "k3s-lab-20261123-020000-k3s-05-1795399200.db"
    path.write_bytes(data)
    with contextlib.suppress(SnapshotError):
        check_sqlite(path)
