"""Ctrl-C (SIGINT) and SIGTERM (systemd stopping the unit) in the middle of an upload: one line
naming the signal and the phase, the same line in the log and the state file, the temporary on
the backup host removed, exit 130 and 143; the next run catches up.

The run is a real process; the signal is sent once the lab proxy in front of sshd has
carried the first megabytes of the copy and its temporary exists on the backup host (the copy
is ~30 MB of random bytes, so the upload is still going)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from k3s_backup.lab.lab import Lab
from k3s_backup.plumbing.loopback import wait_for
from tests.support.faults import WAIT, Clock, cli, ours, snapshots, spawn_run, temporaries
from tests.support.tcp_proxy import CuttingProxy

UPLOADING = 2_000_000  # bytes through the proxy: well past the handshake, well before the end


@pytest.mark.parametrize(
    ("signum", "code", "said"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_a_signal_mid_upload_is_reported_and_leaves_no_temporary(
    lab: Lab, tmp_path: Path, signum: int, code: int, said: str
) -> None:
    for index in range(30):  # incompressible, ~30 MB
        lab.etcd.put(f"/registry/secrets/default/big-{index}", os.urandom(1_000_000))
    with CuttingProxy(("127.0.0.1", lab.sshd.port)) as proxy:
        lab.known_hosts.write_text(lab.sshd.known_hosts_line(port=proxy.port) + "\n")
        config = lab.write_config(tmp_path / "c.toml", targets=[lab.ssh_target(port=proxy.port)])
        proc = spawn_run(lab, config)
        wait_for(
            lambda: proxy.bytes_up >= UPLOADING and bool(temporaries(lab.remote_dir)),
            WAIT,
            "the upload to be under way",
            interval=0.01,
        )
        os.kill(proc.pid, signum)
        stdout, stderr = proc.communicate(timeout=WAIT)
        assert proc.returncode == code, (stdout, stderr)
        [snapshot] = ours(lab.snapshot_dir)
        line = (
            f"interrupted ({said}) during upload to backup-host; snapshot {snapshot} kept"
            " locally, the next run catches up"
        )
        errors = [x for x in stderr.decode().splitlines() if x.strip()]
        assert errors == [f"error: {line}"], stderr.decode()  # one line, no traceback
        assert "Aborted" not in stdout.decode()
        log = (lab.root / "k3s-backup.log").read_text().splitlines()
        assert log[-1].endswith(f"ERROR: {line}")
        state = json.loads((lab.root / "state" / "state.json").read_text())["last_run"]
        assert (state["error"], state["outcome"], state["exit_code"]) == (
            line,
            "interrupted",
            code,
        )
        assert temporaries(lab.remote_dir) == []  # the partial copy did not stay behind
        assert ours(lab.remote_dir) == []

        result = cli(lab, config, Clock(), "run")
    assert result.code == 0, result.stderr
    assert snapshot in snapshots(lab.remote_dir)
