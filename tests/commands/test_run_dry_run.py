"""`run --dry-run`: what a run would snapshot, ship and rotate (and why), changing nothing on
the node or the targets, the log or the state; what it predicts is what the run then does."""

from __future__ import annotations

import re
from pathlib import Path

from k3s_backup.lab.lab import Lab
from tests.support.cli_runner import Result, invoke
from tests.support.faults import Nightly, ours


def run(lab: Lab, config: Path, clock: Nightly, *args: str) -> Result:
    return invoke(["--config", str(config), "run", *args], environ=lab.env(), now=clock)


def tree(*roots: Path) -> dict[str, bytes | None]:
    """Every path under `roots` (or the file itself) with its bytes."""
    seen: dict[str, bytes | None] = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))] if root.exists() else []:
            seen[str(path)] = path.read_bytes() if path.is_file() else None
    return seen


def everything(lab: Lab) -> dict[str, bytes | None]:
    return tree(lab.snapshot_dir, lab.remote_dir, lab.root / "state", lab.root / "k3s-backup.log")


def test_dry_run_says_what_the_run_would_do_and_changes_nothing(lab: Lab, tmp_path: Path) -> None:
    config = lab.write_config(tmp_path / "c.toml", keep_local=3, targets=[lab.ssh_target(keep=3)])
    clock = Nightly()
    for _ in range(3):
        assert run(lab, config, clock).code == 0
    local, remote = ours(lab.snapshot_dir), ours(lab.remote_dir)
    smaller = lab.write_config(
        tmp_path / "smaller.toml", keep_local=2, targets=[lab.ssh_target(keep=2)]
    )
    before = everything(lab)

    dry = run(lab, smaller, clock, "--dry-run")
    assert dry.code == 0, dry.stderr
    assert everything(lab) == before  # no snapshot, upload, deletion, log line or record
    assert re.search(r"would take snapshot k3s-lab-\d{8}-\d{6}-\S+ with `k3s etcd-snap", dry.stdout)
    assert re.search(r"would ship k3s-lab-\S+\.zst to backup-host, verify it there", dry.stdout)
    assert f"would delete {remote[0]} from backup-host (older than the 2 kept)" in dry.stdout
    assert f"would delete {remote[1]} from backup-host" in dry.stdout
    assert f"would delete local snapshot {local[0]} (older than the 2 kept)" in dry.stdout
    assert f"would delete local snapshot {local[1]}" in dry.stdout
    assert "Dry run: no snapshot taken" in dry.stdout

    real = run(lab, smaller, clock)
    assert real.code == 0, real.stderr
    assert ours(lab.remote_dir)[:1] == remote[2:]  # what the dry run said went
    assert ours(lab.snapshot_dir)[:1] == local[2:]


def test_dry_run_with_a_target_down_says_so_and_what_local_rotation_keeps(
    lab: Lab, tmp_path: Path
) -> None:
    config = lab.write_config(tmp_path / "c.toml", keep_local=1)
    clock = Nightly()
    lab.sshd.stop()
    for _ in range(2):
        assert run(lab, config, clock).code == 3
    made = ours(lab.snapshot_dir)
    before = everything(lab)
    dry = run(lab, config, clock, "--dry-run")
    assert dry.code == 0, dry.stderr
    assert everything(lab) == before
    assert "target backup-host: cannot be read now (" in dry.stdout
    assert f"keep local snapshot {made[0]} beyond keep_local = 1: backup-host still lacks it" in (
        dry.stdout
    )
    assert "would delete" not in dry.stdout
