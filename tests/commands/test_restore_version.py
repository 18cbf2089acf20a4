"""What a restore starts while the copy is fetched (the pre-flight's `k3s --version`): a fetch
that fails leaves nothing of it running."""

from __future__ import annotations

from pathlib import Path

from k3s_backup.lab.lab import Lab
from tests.commands.test_run_overlap import k3s_whose_version, running
from tests.support.cli_runner import invoke


def test_a_failed_fetch_stops_a_hanging_version(lab: Lab, tmp_path: Path) -> None:
    k3s, pid_file = k3s_whose_version(lab, tmp_path, "exec sleep 600")
    config = lab.write_config(tmp_path / "config.toml", k3s={"bin": k3s, "data_dir": lab.data_dir})
    result = invoke(["--config", str(config), "restore", "latest", "--yes"], environ=lab.env())
    assert result.code != 0
    assert "Step 1" not in result.stdout + result.stderr  # nothing was stopped or changed
    # killed, not left behind for the 30 s of its timeout (or unstarted: killed before it ran)
    assert not pid_file.exists() or not running(pid_file)
