"""What a run starts while its snapshot is taken (the restore bundle's `k3s --version`): when
that fails or hangs, the run says and exits what it did when it ran it afterwards, and leaves
nothing of it running."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from k3s_backup.catalogue import bundle
from k3s_backup.lab.lab import Lab
from tests.commands.test_run import Clock, set_state
from tests.support.cli_runner import Result, clock_at, invoke

WHEN = datetime(2026, 11, 23, 2, 0, 0).astimezone()


def k3s_whose_version(lab: Lab, tmp_path: Path, answer: str) -> tuple[Path, Path]:
    """A `k3s` that is the lab's but for `--version`, which runs `answer` (a shell line) and
    writes its PID first; (the program, the PID file)."""
    pid_file = tmp_path / "version.pid"
    program = tmp_path / "bin" / "k3s"
    program.parent.mkdir()
    program.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = --version ]; then echo $$ > {pid_file}; {answer}; fi\n'
        f'exec {lab.bin_dir / "k3s"} "$@"\n'
    )
    program.chmod(0o755)
    return program, pid_file


def run(
    lab: Lab, where: Path, k3s: Path | None, now: Callable[[], datetime] | None = None
) -> Result:
    where.mkdir(exist_ok=True)
    config = lab.write_config(
        where / "config.toml", k3s={"bin": k3s or lab.bin_dir / "k3s", "data_dir": lab.data_dir}
    )
    return invoke(["--config", str(config), "run"], environ=lab.env(), now=now or Clock())


def untimed(text: str) -> str:
    return re.sub(r'time="[^"]*"', 'time="..."', text)


def running(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return False
    return True


def local_bundle_version(lab: Lab) -> str | None:
    [made] = (lab.root / "state" / "bundles").iterdir()
    return bundle.read(made).k3s_version


@pytest.mark.parametrize("answer", ["echo 'no version here' >&2; exit 2", "exec sleep 600"])
def test_a_version_that_fails_or_hangs_leaves_it_unknown_and_the_run_succeeds(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    monkeypatch.setattr(bundle, "VERSION_TIMEOUT", 1.0)  # a hang is cut short, as at 30 s
    k3s, pid_file = k3s_whose_version(lab, tmp_path, answer)
    result = run(lab, tmp_path, k3s)
    assert result.code == 0, result.stderr
    assert "bundle" not in result.stderr  # as before: an unknown version is no warning
    assert local_bundle_version(lab) is None
    assert not running(pid_file)


def test_a_failed_snapshot_stops_a_hanging_version_and_says_what_it_said(
    lab: Lab, tmp_path: Path
) -> None:
    set_state(lab, failure="fatal")
    before = run(lab, tmp_path / "plain", None, clock_at(WHEN))  # its version answers
    k3s, pid_file = k3s_whose_version(lab, tmp_path, "exec sleep 600")
    result = run(lab, tmp_path, k3s, clock_at(WHEN))
    assert (result.code, result.stdout) == (1, before.stdout)
    assert untimed(result.stderr) == untimed(before.stderr)  # K3s stamps its own lines
    assert "snapshot failed, nothing shipped" in result.stderr
    assert not running(pid_file)  # not left behind for the 30 s of its timeout, or more
