"""An interrupted restore is a state, not a crash: Ctrl-C (SIGINT to the process group, as a
terminal sends it) or SIGTERM at a step leaves this node in the state the message describes,
with the commands to go on or back, and the verified file kept.

The restore runs as a real process; the stand-in `systemctl` or `k3s` holds at a named point
(testbed.hold) so the signal arrives while that step runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from k3s_backup.testbed.hold import Hold
from k3s_backup.testbed.lab import Lab
from tests.commands.test_restore import (
    change_keys,
    db_dir,
    etcd_olds,
    k3s_active,
    set_state,
    write_config,
    write_keys,
)
from tests.faults.support import WAIT, Clock, cli, spawn_cli


@pytest.fixture
def config(lab: Lab, tmp_path: Path) -> Path:
    return write_config(lab, tmp_path / "config.toml")


def hold(lab: Lab, point: str) -> Hold:
    gate = Hold(lab.root / "hold", point)
    gate.arm()
    set_state(lab, hold_at=point, hold_dir=gate.directory)
    return gate


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    _out, err = proc.communicate(timeout=WAIT)
    return proc.returncode, _out.decode(), err.decode()


def kept_file(stderr: str) -> Path:
    found = re.search(r"The verified snapshot is kept at (\S+)", stderr)
    assert found, stderr
    return Path(found.group(1))


def test_ctrl_c_during_the_cluster_reset_lets_it_finish_and_says_how_to_go_on(
    lab: Lab, config: Path
) -> None:
    at_backup = write_keys(lab)
    assert cli(lab, config, Clock(), "run").code == 0
    change_keys(lab)
    gate = hold(lab, "cluster-reset")  # K3s has moved etcd aside and not yet restored
    proc = spawn_cli(lab, config, "restore", "--yes")
    gate.wait_reached(proc)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole foreground group
    gate.release()
    code, _out, err = finish(proc)
    assert code == 130, err
    assert "Traceback" not in err
    assert "SIGINT received: finishing the running step" in err
    assert "interrupted by SIGINT before step 4" in err
    [old] = etcd_olds(lab)  # the reset ran to its end: the old data aside, the new in place
    assert (db_dir(lab) / "etcd").is_dir()
    assert f"the previous etcd data is kept in {old}. K3s is stopped." in err
    assert not k3s_active(lab)
    kept = kept_file(err)
    assert kept.is_file() and kept.stat().st_mode & 0o777 == 0o600
    go_on = re.search(r"To go on with the restore, run in order: (.+)", err)
    assert go_on and go_on.group(1).startswith("systemctl start k3s; ")
    # The operator follows the message: the restored data comes up.
    subprocess.run(["systemctl", "start", "k3s"], env=lab.env(), check=True, timeout=WAIT)
    assert lab.etcd.get_all() == at_backup


def test_sigterm_while_k3s_stops_starts_it_again_on_the_untouched_data(
    lab: Lab, config: Path
) -> None:
    write_keys(lab)
    assert cli(lab, config, Clock(), "run").code == 0
    change_keys(lab)
    keys = lab.etcd.get_all()
    gate = hold(lab, "stop")  # K3s is down, `systemctl stop` has not returned yet
    proc = spawn_cli(lab, config, "restore", "--yes")
    gate.wait_reached(proc)
    proc.send_signal(signal.SIGTERM)  # as `kill PID` or a shutdown would
    gate.release()
    code, _out, err = finish(proc)
    assert code == 143, err
    assert "interrupted by SIGTERM during step 1" in err  # left at its wait for the stop
    assert "Nothing was restored" in err and "K3s was started again" in err
    assert k3s_active(lab)
    assert lab.etcd.get_all() == keys
    assert etcd_olds(lab) == []
    assert kept_file(err).is_file()
    assert re.search(r"To restore after all: k3s-backup restore k3s-lab-\S+", err)


def test_ctrl_c_at_the_prompt_changes_nothing(lab: Lab, config: Path) -> None:
    write_keys(lab)
    assert cli(lab, config, Clock(), "run").code == 0
    keys = lab.etcd.get_all()
    proc = spawn_cli(lab, config, "restore", stdin=subprocess.PIPE)
    assert proc.stdout is not None
    seen = b""
    while b"Type the cluster name" not in seen:  # the prompt is flushed before reading stdin
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, "the restore ended before its prompt"
        seen += chunk
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 130, err
    assert "Traceback" not in err.decode()
    assert "interrupted by SIGINT before anything was stopped: nothing was changed" in err.decode()
    assert k3s_active(lab) and lab.etcd.get_all() == keys
    assert [p for p in (lab.root / "state").iterdir() if p.name.startswith("restore-")] == []
