"""`k3s-backup serve-prune` on a real directory: what the host's own rotation removes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from k3s_backup.service.main import main

OLD = "k3s-lab-20261121-020000-k3s-05-1795226400.zst"
MID = "k3s-lab-20261122-020000-k3s-05-1795312800.zst"
NEW = "k3s-lab-20261123-020000-k3s-05-1795399200.zst"
OTHER_CLUSTER = "prod-20261101-020000-k3s-05-1793498400.zst"


def fill(directory: Path) -> None:
    for copy in (OLD, MID, NEW, OTHER_CLUSTER):
        for name in (copy, copy + ".json", copy + ".bundle.tar"):
            (directory / name).write_bytes(b"x")
    (directory / "etcd-snapshot-k3s-05-1795399200").write_bytes(b"k3s's own")
    stale, fresh = f".{OLD}.partial-0123abcd", f".{NEW}.partial-89abcdef"
    theirs = f".{OTHER_CLUSTER}.partial-00000000"  # another cluster's: not ours to remove
    for name in (stale, fresh, theirs):
        (directory / name).write_bytes(b"half")
    two_days_ago = time.time() - 2 * 86400
    for name in (stale, theirs):
        os.utime(directory / name, (two_days_ago, two_days_ago))


def prune(directory: Path, *extra: str) -> int:
    return main(["serve-prune", "--root", str(directory), "--cluster", "k3s-lab", *extra])


def test_rotation_removes_old_copies_with_their_sidecars_and_stale_temporaries(
    tmp_path: Path, capsys
) -> None:
    fill(tmp_path)
    before = sorted(os.listdir(tmp_path))
    assert prune(tmp_path, "--keep", "2", "--dry-run") == 0
    assert sorted(os.listdir(tmp_path)) == before
    assert f"would remove {OLD}" in capsys.readouterr().out
    assert prune(tmp_path, "--keep", "2") == 0
    gone = {OLD, OLD + ".json", OLD + ".bundle.tar", f".{OLD}.partial-0123abcd"}
    assert sorted(os.listdir(tmp_path)) == sorted(set(before) - gone)


def test_usage_and_a_missing_directory(tmp_path: Path, capsys) -> None:
    assert prune(tmp_path) == 2  # --keep is required
    assert "--keep" in capsys.readouterr().err
    assert prune(tmp_path, "--keep", "0") == 2
    assert prune(tmp_path / "gone", "--keep", "1") == 1
    assert "does not exist on the backup host" in capsys.readouterr().out
