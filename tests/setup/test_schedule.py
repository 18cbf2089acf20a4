"""Setup's step 5 as a plan: what the scheduler needs written, what of ours goes, and systemctl,
as data before anything is touched; applied, a second plan has nothing left to do."""

from __future__ import annotations

import os
from pathlib import Path

from k3s_backup.config import parse_config
from k3s_backup.plumbing.plan import NOTE, apply
from k3s_backup.scheduling import SystemPaths
from k3s_backup.setup.schedule import schedule_plan

ENV = {"PATH": os.environ["PATH"]}


def config_of(root: Path, scheduler: str):
    data = {
        "scheduler": scheduler,
        "log_file": str(root / "var" / "log" / "k3s-backup.log"),
        "state_dir": str(root / "var" / "lib" / "k3s-backup"),
    }
    return parse_config(data, root / "etc" / "k3s-backup" / "config.toml")


def test_cron_then_systemd_then_nothing_left_to_do(tmp_path: Path) -> None:
    paths = SystemPaths(tmp_path)
    config_path = paths.config
    cron = schedule_plan(config_of(tmp_path, "cron"), paths, config_path)
    assert [s.what for s in cron.steps] == ["write", "write"]  # cron file, logrotate rule
    assert [s.target for s in cron.steps] == [str(paths.cron), str(paths.logrotate)]
    assert not paths.cron.exists()  # a plan touches nothing
    apply(cron, False, ENV, lambda line: None)
    assert paths.cron.exists()

    systemd = schedule_plan(config_of(tmp_path, "systemd"), paths, config_path)
    kinds = [(s.what, s.target) for s in systemd.steps]
    assert kinds[:3] == [
        ("remove", str(paths.cron)),
        ("write", str(paths.service)),
        ("write", str(paths.timer)),
    ]
    assert kinds[3] == (NOTE, "")  # the logrotate rule: unchanged
    commands = [s for s in systemd.steps if s.what == "run"]
    assert [s.target for s in commands] == [
        "systemctl daemon-reload",
        "systemctl enable --now k3s-backup.timer",
    ]
    assert all(s.skipped and "--root" in s.skipped for s in commands)  # never under --root
    apply(systemd, False, ENV, lambda line: None)
    again = schedule_plan(config_of(tmp_path, "systemd"), paths, config_path)
    assert again.changes == []  # every file unchanged; enabling the timer skipped under --root
    assert [s.target for s in again.steps if s.what == "run"] == [
        "systemctl enable --now k3s-backup.timer"
    ]
    assert not paths.cron.exists() and paths.timer.exists()
