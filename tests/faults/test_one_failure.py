"""A failure in one target or one file never aborts the rest of a run: whatever goes wrong
after the snapshot, the other targets are served, local rotation and the state record still
happen, and the exit code says what failed (3, partial)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from k3s_backup.lab.lab import Lab
from tests.support.faults import Clock, cli, ours, snapshots


def _state(lab: Lab) -> dict[str, object]:
    state: dict[str, object] = json.loads((lab.root / "state" / "state.json").read_text())
    return state


def test_an_unforeseen_error_in_one_target_fails_that_target_alone(
    lab: Lab, tmp_path: Path
) -> None:
    nas = tmp_path / "nas"
    nas.mkdir(mode=0o700)  # mounted: its failure is the bundle that reads as EIO
    first = lab.write_config(tmp_path / "one.toml", keep_local=2)
    clock = Clock()
    assert cli(lab, first, clock, "run").code == 0
    [older] = ours(lab.snapshot_dir)
    # The restore bundle the new target must catch up with reads as EIO (a failing disk):
    # an OSError where the run expects none.
    bundle = lab.root / "state" / "bundles" / f"{older}.bundle.tar"
    bundle.unlink()
    os.symlink("/proc/self/mem", bundle)
    nas_target = {"name": "nas", "type": "local", "path": nas, "keep": 7}
    both = lab.write_config(
        tmp_path / "both.toml", keep_local=2, targets=[nas_target, lab.ssh_target()]
    )
    result = cli(lab, both, clock, "run")
    assert result.code == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "target nas failed: unexpected OSError: Input/output error" in result.stderr
    assert "backup PARTIAL" in result.stderr and "nas failed" in result.stderr
    assert snapshots(lab.remote_dir) == ours(lab.snapshot_dir)  # the other target was served
    assert len(ours(lab.snapshot_dir)) == 2
    last_run = _state(lab)["last_run"]
    assert isinstance(last_run, dict)
    assert last_run["exit_code"] == 3
    assert last_run["targets"]["backup-host"]["ok"] is True
    assert last_run["targets"]["nas"]["ok"] is False


def test_a_failing_local_rotation_is_reported_and_the_run_recorded(
    lab: Lab, tmp_path: Path
) -> None:
    config = lab.write_config(tmp_path / "c.toml", keep_local=1)
    clock = Clock()
    assert cli(lab, config, clock, "run").code == 0
    [older] = ours(lab.snapshot_dir)
    # What the run keeps about the copy it is about to rotate away cannot be removed.
    record = lab.root / "state" / "manifests" / f"{older}.json"
    record.unlink()
    record.mkdir()
    result = cli(lab, config, clock, "run")
    assert result.code == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "local rotation failed: unexpected IsADirectoryError" in result.stderr
    [newest] = ours(lab.snapshot_dir)
    assert newest != older
    assert newest in snapshots(lab.remote_dir)
    last_run = _state(lab)["last_run"]
    assert isinstance(last_run, dict)
    assert last_run["exit_code"] == 3
    assert last_run["snapshot"]["name"] == newest
    assert "local rotation failed" in last_run["error"]


def test_a_snapshot_whose_record_cannot_be_written_fails_the_run_with_a_message(
    lab: Lab, tmp_path: Path
) -> None:
    config = lab.write_config(tmp_path / "c.toml")
    (lab.root / "state").mkdir(parents=True)
    (lab.root / "state" / "manifests").write_bytes(b"not a directory")
    result = cli(lab, config, Clock(), "run")
    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "snapshot failed, nothing shipped: unexpected FileExistsError" in result.stderr
    assert list(lab.remote_dir.iterdir()) == []  # its copy, read whole first, got no final name
    last_run = _state(lab)["last_run"]
    assert isinstance(last_run, dict)
    assert last_run["exit_code"] == 1 and "FileExistsError" in last_run["error"]
    assert (lab.root / "state" / "manifests").read_bytes() == b"not a directory"
