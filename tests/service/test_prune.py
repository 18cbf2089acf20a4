"""`k3s-backup serve-prune` on a real directory: what the host's own rotation removes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from k3s_backup.policy import naming
from k3s_backup.service.main import main
from tests.service.support import served

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
    assert f"removed {OLD} from {tmp_path}" in capsys.readouterr().out  # said once done
    gone = {OLD, OLD + ".json", OLD + ".bundle.tar", f".{OLD}.partial-0123abcd"}
    assert sorted(os.listdir(tmp_path)) == sorted(set(before) - gone)


def test_usage_and_a_missing_directory(tmp_path: Path, capsys) -> None:
    assert prune(tmp_path) == 2  # --keep is required
    assert "--keep" in capsys.readouterr().err
    assert prune(tmp_path, "--keep", "0") == 2
    assert prune(tmp_path / "gone", "--keep", "1") == 1
    assert "does not exist on the backup host" in capsys.readouterr().out


# -- a stolen append-only key: a burst of good-looking copies ------------------------------------

DAY = 86400


def named_at(when: float) -> str:
    """A copy of ours stamped at `when`, as a node (or an intruder with its key) names it."""
    return (
        f"k3s-lab-{time.strftime(naming.STAMP_FORMAT, time.localtime(when))}-k3s-05-{int(when)}.zst"
    )


def _digest(data: bytes) -> Callable[[], str]:
    return lambda: hashlib.sha256(data).hexdigest()


def upload(directory: Path, names: list[str], uid: str = "u1") -> None:
    """Through the service, as the node's append-only key does: each copy and its manifest."""
    with served(directory) as s:
        for name in names:
            manifest = json.dumps({"cluster_uid": uid}).encode()
            for file, data in ((name, os.urandom(64)), (name + ".json", manifest)):
                s.client.put(file, io.BytesIO(data).read, _digest(data))


def received_days_ago(directory: Path, name: str, days: float) -> None:
    """What days of waiting would do: the host received it then (the file's mtime)."""
    when = time.time() - days * DAY
    for file in (name, name + ".json"):
        os.utime(directory / file, (when, when))


def contents(directory: Path, names: list[str]) -> dict[str, bytes]:
    return {n: (directory / f).read_bytes() for n in names for f in (n, n + ".json")}


def test_a_burst_of_forged_copies_cannot_push_out_copies_received_before_it(
    tmp_path: Path,
) -> None:
    now = time.time()
    ages = (2.5, 1.5, 0.5)  # days since the host received each
    real = [named_at(now - days * DAY) for days in ages]
    upload(tmp_path, real)
    for days, name in zip(ages, real, strict=True):
        received_days_ago(tmp_path, name, days)
    before = contents(tmp_path, real)
    forged = [named_at(now - 60 * i) for i in range(3 + 10)]  # keep + 10, newer than any real
    upload(tmp_path, forged)
    assert prune(tmp_path, "--keep", "3", "--protect-days", "7") == 0
    assert contents(tmp_path, real) == before  # every copy from before the attack, as it was
    assert prune(tmp_path, "--keep", "3", "--protect-days", "2") == 0
    assert not (tmp_path / real[0]).exists()  # outside the window, the rules apply again
    assert contents(tmp_path, real[1:]) == {k: v for k, v in before.items() if real[0] not in k}


def test_gfs_periods_are_the_hosts_receive_days_not_the_days_names_claim(tmp_path: Path) -> None:
    now = time.time()
    real = [named_at(now - days * DAY) for days in (12, 11, 10)]
    upload(tmp_path, real)
    for days, name in zip((12, 11, 10), real, strict=True):
        received_days_ago(tmp_path, name, days)
    before = contents(tmp_path, real)
    # Forged copies claiming one a day for the last 13 days: by their names they would fill
    # every daily period; the host received them all today, one period.
    upload(tmp_path, [named_at(now - days * DAY + 30) for days in range(13)])
    assert prune(tmp_path, "--keep", "3", "--keep-daily", "4") == 0
    assert contents(tmp_path, real) == before
