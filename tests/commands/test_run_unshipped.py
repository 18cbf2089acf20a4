"""Local rotation while a target is down: a snapshot that never left the node is kept (beyond
keep_local) until the target has it, unless the next snapshot would not fit on the node."""

from __future__ import annotations

import os
import shutil

from k3s_backup.lab.lab import Lab
from tests.support.cli_runner import Result, invoke
from tests.support.faults import Nightly, ours, small_tmpfs, snapshots
from tests.support.json_schema import validate


def run(lab: Lab, config, clock: Nightly, *args: str) -> Result:
    return invoke(["--config", str(config), *(args or ("run",))], environ=lab.env(), now=clock)


def only_here_metric(metrics: str) -> float:
    [line] = [x for x in metrics.splitlines() if x.startswith("k3s_backup_local_only_snapshots ")]
    return float(line.split()[1])


def test_four_nights_without_the_backup_host_rotate_nothing_unshipped(lab, tmp_path):
    config = lab.write_config(tmp_path / "c.toml", keep_local=3)
    clock = Nightly()
    for _ in range(3):
        assert run(lab, config, clock).code == 0
    shipped = ours(lab.snapshot_dir)
    lab.sshd.stop()
    unshipped = []
    for night in range(4):
        result = run(lab, config, clock)
        assert result.code == 3, result.stderr
        unshipped.append(ours(lab.snapshot_dir)[-1])
        assert set(unshipped) <= set(ours(lab.snapshot_dir))  # none rotated away
        assert f"{night + 1} only on this node" in result.stdout
    assert ours(lab.snapshot_dir) == unshipped  # the shipped ones went as keep_local says
    assert not set(shipped) & set(ours(lab.snapshot_dir))
    assert "Keeping 1 local snapshot(s) beyond keep_local = 3 until backup-host" in result.stdout

    status = run(lab, config, clock, "status", "--json")
    assert validate(status.stdout, "status")["local_only"] == 4
    assert "4 only on this node" in run(lab, config, clock, "status").stdout
    assert only_here_metric(run(lab, config, clock, "metrics").stdout) == 4

    lab.sshd.start()
    result = run(lab, config, clock)
    assert result.code == 0, result.stderr
    caught_up = [line.split()[2] for line in result.lines if line.startswith("Caught up")]
    assert caught_up == [f"{name}.zst" for name in unshipped]  # every one, oldest first
    assert set(unshipped) <= set(snapshots(lab.remote_dir))
    assert len(ours(lab.snapshot_dir)) == 3  # back to keep_local once they are off the node
    assert "0 only on this node" in result.stdout
    assert validate(run(lab, config, clock, "status", "--json").stdout, "status")["local_only"] == 0
    assert only_here_metric(run(lab, config, clock, "metrics").stdout) == 0


def test_prune_keeps_what_a_target_lacks_too(lab, tmp_path):
    config = lab.write_config(tmp_path / "c.toml", keep_local=3)
    clock = Nightly()
    lab.sshd.stop()
    for _ in range(5):
        assert run(lab, config, clock).code == 3
    made = ours(lab.snapshot_dir)
    assert len(made) == 5
    smaller = lab.write_config(tmp_path / "smaller.toml", keep_local=1)
    dry = run(lab, smaller, clock, "prune", "--dry-run")
    assert f"local: keep   {made[0]}  (backup-host still lacks it)" in dry.stdout
    assert run(lab, smaller, clock, "prune").code == 1  # the target cannot be read
    assert ours(lab.snapshot_dir) == made


def test_unshipped_snapshots_give_way_oldest_first_when_the_next_would_not_fit(lab, tmp_path):
    lab.etcd.put("/registry/secrets/default/big", os.urandom(400_000))  # ~412 KiB snapshots
    config = lab.write_config(tmp_path / "c.toml", keep_local=1)
    clock = Nightly()
    lab.sshd.stop()  # never reached: every snapshot exists only here
    with small_tmpfs(lab.snapshot_dir, "2m"):  # room for four
        made, dropped = [], []
        for _ in range(6):
            result = run(lab, config, clock)
            assert result.code == 3, result.stderr  # the snapshot itself always fits
            made.append(ours(lab.snapshot_dir)[-1])
            newest = (lab.snapshot_dir / made[-1]).stat().st_size
            assert shutil.disk_usage(lab.snapshot_dir).free >= newest  # room for the next
            warned = [x for x in result.stderr.splitlines() if "deleting local snapshot" in x]
            dropped += [name for name in made if any(name in x for x in warned)]
        assert ours(lab.snapshot_dir) == made[-3:]  # keep_local = 1, but two more kept
        assert dropped == made[:3]  # the oldest went first, one per night, each said
        assert "although backup-host never received it" in result.stderr
