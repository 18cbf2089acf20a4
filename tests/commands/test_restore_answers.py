"""`restore` with nobody to answer its questions (stdin at its end: cron, `</dev/null`): exit 2
and the way on (`--yes`, also `-y`), nothing stopped; an empty line is still a "no"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from k3s_backup.lab.lab import Lab
from tests.commands.test_restore import (
    assert_untouched,
    change_keys,
    etcd_pid,
    write_config,
    write_keys,
)
from tests.support.cli_runner import invoke


def test_restore_with_stdin_at_its_end_exits_2_and_says_yes(lab: Lab, tmp_path: Path) -> None:
    config = write_config(lab, tmp_path / "c.toml")
    at_backup = write_keys(lab)
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 0
    change_keys(lab)
    keys, pid = lab.etcd.get_all(), etcd_pid(lab)
    from_null = subprocess.run(
        [*_cli(), "--config", str(config), "restore"],
        env=lab.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert from_null.returncode == 2, from_null.stderr
    assert "stdin has none" in from_null.stderr and "--yes (-y)" in from_null.stderr
    assert "Traceback" not in from_null.stderr
    assert_untouched(lab, pid, keys)
    declined = invoke(["--config", str(config), "restore"], environ=lab.env(), stdin="\n")
    assert declined.code == 1 and "not confirmed" in declined.stderr  # an empty line: no
    assert_untouched(lab, pid, keys)
    result = invoke(["--config", str(config), "restore", "-y"], environ=lab.env())
    assert result.code == 0, result.stderr
    assert lab.etcd.get_all() == at_backup  # and -y restores


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("k3s-backup")
    main = "import sys; from k3s_backup.cli import main; sys.exit(main(sys.argv[1:]))"
    return [str(script)] if script.exists() else [sys.executable, "-c", main]
