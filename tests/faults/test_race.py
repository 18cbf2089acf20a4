"""Two runs racing: one holds the lock, the other exits 4 having done nothing; what the first
made is whole and verified. (A lock held by a plain flock is in tests/commands/test_run.py,
test_second_run_while_one_holds_the_lock_exits_4.)"""

from __future__ import annotations

from pathlib import Path

from k3s_backup.lab.lab import Lab
from tests.support.faults import (
    WAIT,
    Clock,
    assert_final_names_whole,
    cli,
    gated_run,
    ours,
    snapshots,
    spawn_run,
)


def test_a_run_started_while_another_takes_its_snapshot_exits_4_and_changes_nothing(
    lab: Lab, tmp_path: Path
) -> None:
    gated = lab.write_config(tmp_path / "gated.toml", log_file=tmp_path / "log.fifo")
    normal = lab.write_config(tmp_path / "normal.toml")
    clock = Clock()
    with gated_run(lab, gated, tmp_path / "log.fifo") as (first, gate):
        gate.read_until("Creating snapshot")  # it holds the lock; K3s is taking its snapshot
        second = cli(lab, normal, clock, "run")
        assert second.code == 4
        assert "another k3s-backup run holds the lock" in second.stderr
        assert cli(lab, normal, clock, "prune").code == 4  # rotation waits its turn too
        gate.drain()
        first.communicate(timeout=WAIT)
        assert first.returncode == 0
    [made] = ours(lab.snapshot_dir)  # the second run made no snapshot
    assert snapshots(lab.remote_dir) == [made]
    assert cli(lab, normal, clock, "verify").code == 0


def test_two_runs_started_together_one_wins_nothing_is_half_done(lab: Lab, tmp_path: Path) -> None:
    config = lab.write_config(tmp_path / "c.toml")
    procs = [spawn_run(lab, config) for _ in range(2)]
    codes = sorted(proc.wait(WAIT) for proc in procs)
    for proc in procs:
        proc.communicate(timeout=WAIT)
    assert codes in ([0, 4], [0, 0])  # [0, 0]: the second started after the first finished
    assert len(ours(lab.snapshot_dir)) == codes.count(0)
    assert snapshots(lab.remote_dir) == ours(lab.snapshot_dir)
    assert_final_names_whole(lab)
    assert cli(lab, config, Clock(), "verify").code == 0
