"""The node's clock jumping backwards between runs (a bad NTP step, a dead RTC battery).

Names carry the time twice, the run's stamp and K3s's unix time, and both jump back with the
clock: the stand-in k3s adds `clock_offset` to its unix time as the real K3s would show it.
Rotation orders copies by those times, never by mtime, and never removes the copy the run just
made: while the clock is behind, a target keeps its newest-named copies plus the latest one made
(keep + 1), and once the clock is right again the behind-the-clock copies are the oldest by name.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from k3s_backup.lab.lab import Lab
from tests.support.cli_runner import clock_at
from tests.support.faults import cli, ours, set_state, snapshots

DAY = 86400


def run_at(lab: Lab, config: Path, when: datetime) -> str:
    """A run at `when` (local time); the snapshot it made."""
    before = set(ours(lab.snapshot_dir))
    result = cli(lab, config, clock_at(when.astimezone()), "run")
    assert result.code == 0, result.stderr
    [made] = set(ours(lab.snapshot_dir)) - before
    return made


def test_rotation_keeps_the_newest_named_copies_and_never_the_one_just_made(
    lab: Lab, tmp_path: Path
) -> None:
    config = lab.write_config(tmp_path / "c.toml", keep_local=3, targets=[lab.ssh_target(keep=3)])
    a, b, c = (run_at(lab, config, datetime(2026, 11, 23, hour)) for hour in (1, 2, 3))
    assert snapshots(lab.remote_dir) == [a, b, c]

    set_state(lab, clock_offset=-DAY)  # the clock steps back a day
    d = run_at(lab, config, datetime(2026, 11, 22, 4))
    assert snapshots(lab.remote_dir) == sorted([a, b, c, d])  # d is kept: just made
    assert d in ours(lab.snapshot_dir)
    e = run_at(lab, config, datetime(2026, 11, 22, 5))
    assert set(snapshots(lab.remote_dir)) == {a, b, c, e}  # d now the oldest by name
    assert set(ours(lab.snapshot_dir)) == {a, b, c, e}

    set_state(lab, clock_offset=0)  # the clock is right again
    f = run_at(lab, config, datetime(2026, 11, 23, 6))
    assert set(snapshots(lab.remote_dir)) == {b, c, f}
    assert set(ours(lab.snapshot_dir)) == {b, c, f}
    assert cli(lab, config, clock_at(datetime(2026, 11, 23, 7).astimezone()), "verify").code == 0
