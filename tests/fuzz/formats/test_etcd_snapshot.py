"""Fuzz: the whole-file checks of a snapshot (formats/etcd_snapshot): SHA-256 trailer, meta
pages and size, plain and inside K3s's `.zip`."""

from __future__ import annotations

import contextlib
import io

from k3s_backup.errors import SnapshotError
from k3s_backup.formats.etcd_snapshot import check_file, check_stream
from tests.fuzz.harness import fix_snapshot, fuzz_target, mutated, seed, workdir

_WORKDIR = workdir()
ZIP_NAME = "k3s-lab-20261123-020000-k3s-05-1795399200.zip"


@fuzz_target(mutated([seed("etcd.snapshot")], fix=fix_snapshot), examples=300)
def test_trailer(data: bytes) -> None:
    try:
        check = check_stream(io.BytesIO(data), len(data))
    except SnapshotError:
        return
    assert check.size == len(data)


@fuzz_target(mutated([seed("etcd.snapshot.zip")], page=512), examples=300)
def test_zip(data: bytes) -> None:
    path = _WORKDIR / ZIP_NAME
    path.write_bytes(data)
    with contextlib.suppress(SnapshotError):
        check_file(path)
