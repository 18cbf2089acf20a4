"""The backup host's disk full: a small tmpfs mounted (as root) on the remote directory. The copy
does not fit: exit 3, nothing partial under a final name or left as a temporary, the copies
already there intact, the snapshot kept locally; once there is room, the next run catches up."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from k3s_backup.testbed.lab import Lab
from tests.faults.support import (
    Clock,
    assert_final_names_whole,
    cli,
    ours,
    snapshots,
    temporaries,
)

SIZE = "1m"


@pytest.fixture
def small_disk(lab: Lab) -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs as the backup host's disk needs root")
    lab.remote_dir.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(lab.remote_dir)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(lab.remote_dir)], check=False)


def test_full_backup_disk_gives_exit_3_and_loses_nothing(lab: Lab, tmp_path, small_disk) -> None:
    config = lab.write_config(tmp_path / "c.toml")
    clock = Clock()
    assert cli(lab, config, clock, "run").code == 0  # a small snapshot fits
    [first] = ours(lab.remote_dir)
    kept = (lab.remote_dir / first).read_bytes()

    for index in range(2):  # 2 MB that cannot be compressed: cannot fit in 1 MiB
        lab.etcd.put(f"/registry/secrets/default/big-{index}", os.urandom(1_000_000))
    result = cli(lab, config, clock, "run")
    assert result.code == 3, result.stderr
    assert "the disk there is full" in result.stderr  # said, not a checksum mismatch
    assert "PARTIAL" in result.stderr
    assert_final_names_whole(lab)
    assert ours(lab.remote_dir) == [first]
    assert (lab.remote_dir / first).read_bytes() == kept
    assert temporaries(lab.remote_dir) == []  # the failed upload gave its space back
    assert len(ours(lab.snapshot_dir)) == 2
    assert cli(lab, config, clock, "verify").code == 0  # what is there is still good

    remount = ["mount", "-o", "remount,size=16m", str(lab.remote_dir)]
    subprocess.run(remount, check=True, capture_output=True)
    result = cli(lab, config, clock, "run")
    assert result.code == 0, result.stderr
    assert snapshots(lab.remote_dir) == ours(lab.snapshot_dir)
