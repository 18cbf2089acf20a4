"""`run --dry-run`: what a run would snapshot, ship and rotate (and why), changing nothing on
the node or the targets, the log or the state; what it predicts is what the run then does."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from k3s_backup.lab.lab import Lab
from k3s_backup.policy import naming
from tests.support.cli_runner import Result, clock_at, invoke
from tests.support.faults import Nightly, ours


def run(lab: Lab, config: Path, clock: Callable[[], datetime], *args: str) -> Result:
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


def new_snapshot(result: Result, pattern: str) -> str:
    [name] = [m[1] for line in result.lines if (m := re.match(pattern, line))]
    return name


def said(dry: Result) -> set[str]:
    """The changes a dry run announced, without their reasons; the new snapshot as NEW."""
    new = new_snapshot(dry, r"^would take snapshot (\S+) ")
    changes = {line.removeprefix("would ") for line in dry.lines if line.startswith("would ")}
    return {
        re.sub(r" \(.*\)$", "", c).replace(new, "NEW")
        for c in changes
        if not c.startswith(("take ", "keep "))
    }


def done(real: Result) -> set[str]:
    """The changes a run reported, in the dry run's words; the new snapshot as NEW (K3s
    names it by its own clock, the dry run by the run's)."""
    new = new_snapshot(real, r"^Snapshot (\S+) saved and checked")
    words = [
        (r"^Copied (\S+) to (\S+): SHA-256 verified$", r"ship \1 to \2, verify it there"),
        (r"^Caught up (\S+) to (\S+): SHA-256 verified$", r"catch up \1 to \2"),
        (r"^Rotated local snapshot (\S+)$", r"delete local snapshot \1"),
        (r"^Rotated (\S+) off (\S+)$", r"delete \1 from \2"),
    ]
    changes = set()
    for line in real.lines:
        for pattern, wording in words:
            if re.match(pattern, line):
                changes.add(re.sub(pattern, wording, line).replace(new, "NEW"))
                break
    return changes


def test_the_run_makes_exactly_the_changes_its_dry_run_said(lab: Lab, tmp_path: Path) -> None:
    """GFS rules on one target, another that lacks every copy, a copy the first lost and one
    it holds that does not authenticate, a local snapshot damaged since: what each target
    gets, what rotation deletes there and here, said first, then done."""
    # K3s names a snapshot by its own clock too (the unix time in it), the dry run by the
    # run's: the run's clock is set at about the real time, so the two agree on the order.
    when = datetime.now().astimezone().replace(microsecond=0) + timedelta(hours=1)
    nights = [when - timedelta(hours=12 * n) for n in range(6, 0, -1)]  # two copies a day
    config = lab.write_config(tmp_path / "c.toml", keep_local=6, targets=[lab.ssh_target(keep=6)])
    for night in nights:
        assert run(lab, config, clock_at(night)).code == 0
    remote, local = ours(lab.remote_dir), ours(lab.snapshot_dir)
    lost, forged, damaged = remote[2], remote[4], local[5]
    (lab.remote_dir / lost).unlink()  # the host lost a copy: the run catches it up
    (lab.remote_dir / naming.manifest_name(lost)).unlink()
    manifest = lab.remote_dir / naming.manifest_name(forged)  # no longer authenticates
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "created": "2020"}))
    broken = bytearray((lab.snapshot_dir / damaged).read_bytes())  # no target gets it
    broken[len(broken) // 2] ^= 0xFF
    (lab.snapshot_dir / damaged).write_bytes(broken)
    (tmp_path / "usb").mkdir(mode=0o700)
    usb = {"name": "usb", "type": "local", "path": tmp_path / "usb", "keep": 2}  # lacks all
    gfs = lab.ssh_target(keep=1, keep_daily=3)
    smaller = lab.write_config(tmp_path / "smaller.toml", keep_local=2, targets=[gfs, usb])
    before = everything(lab), tree(tmp_path / "usb")

    dry = run(lab, smaller, clock_at(when), "--dry-run")
    assert dry.code == 0, dry.stderr
    assert (everything(lab), tree(tmp_path / "usb")) == before
    real = run(lab, smaller, clock_at(when))
    assert real.code == 0, real.stderr

    assert said(dry) == done(real)
    for result in (dry, real):
        assert f"{forged} on backup-host does not authenticate: shipping it again" in result.stderr
        assert f"not shipping {damaged}: " in result.stderr
    assert {f"catch up {lost} to backup-host", f"catch up {forged} to backup-host"} <= said(dry)
    assert len([c for c in said(dry) if c.startswith("catch up") and "to usb" in c]) == 5
    assert f"delete {local[4]}.zst from usb" not in said(dry)  # the newest usb gets: kept
    assert len(ours(lab.remote_dir)) == 3  # keep = 1, and one a day for 3 days
    assert ours(tmp_path / "usb")[:1] == [f"{local[4]}.zst"]
    assert len(ours(lab.snapshot_dir)) == 2
