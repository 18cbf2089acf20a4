"""The backup host's disk full: a small tmpfs mounted (as root) on the remote directory. The copy
does not fit: exit 3, nothing partial under a final name or left as a temporary, the copies
already there intact, the snapshot kept locally; once there is room, the next run catches up.
And this node's own disk: no room is needed there for a second copy of the snapshot."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pyrage
import pytest
import zstandard

from k3s_backup.lab.lab import Lab
from tests.support.faults import (
    Clock,
    assert_final_names_whole,
    cli,
    ours,
    small_tmpfs,
    snapshots,
    temporaries,
)

SIZE = "1m"


@pytest.fixture
def small_disk(lab: Lab) -> Iterator[None]:
    with small_tmpfs(lab.remote_dir, SIZE):
        yield


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


def test_a_node_disk_without_room_for_a_second_copy_still_ships_every_form(
    lab: Lab, tmp_path
) -> None:
    """The stored form (zstd, age) is made while it is uploaded: the node needs no room for a
    second copy of the snapshot, where etcd lives and a full disk would hurt most. Here the
    state directory (manifests, bundles) sits on a disk smaller than the snapshot."""
    for index in range(3):  # 3 MB of random values: the snapshot compresses to over 3 MB
        lab.etcd.put(f"/registry/secrets/default/big-{index}", os.urandom(1_000_000))
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    (lab.remote_dir / "sealed").mkdir(mode=0o700)  # as setup makes a target's directory
    targets = [
        lab.ssh_target(name="zstd-copy", compression="zstd"),
        lab.ssh_target(
            name="sealed", path=str(lab.remote_dir / "sealed"), age_recipients=[recipient]
        ),
    ]
    config = lab.write_config(tmp_path / "c.toml", targets=targets)
    with small_tmpfs(lab.root / "state", "1m"):
        result = cli(lab, config, Clock(), "run")
    assert result.code == 0, result.stderr
    [snapshot] = ours(lab.snapshot_dir)
    assert (lab.snapshot_dir / snapshot).stat().st_size > 3_000_000
    plain = (lab.snapshot_dir / snapshot).read_bytes()
    [compressed] = ours(lab.remote_dir)
    assert zstd_d((lab.remote_dir / compressed).read_bytes()) == plain
    [sealed] = ours(lab.remote_dir / "sealed")
    opened = pyrage.decrypt((lab.remote_dir / "sealed" / sealed).read_bytes(), [identity])
    assert zstd_d(opened) == plain


def zstd_d(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)
