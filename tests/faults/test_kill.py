"""`kill -9` of `k3s-backup run` at each phase, then a normal run: nothing lost, nothing partial
under a final name, the lock recovered, every copy verifies.

The killed run is a real process whose log file is a FIFO (support.LogGate): it goes past one
log line at a time, so it is killed while the phase after a known line runs. The upload phase is
caught by a proxy that freezes the SSH connection after a number of bytes, mid-copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from k3s_backup.lab.lab import Lab
from tests.support.faults import (
    Clock,
    assert_final_names_whole,
    cli,
    gated_run,
    kill_run,
    ours,
    snapshots,
    temporaries,
    wait_for_backup_host,
)
from tests.support.tcp_proxy import CuttingProxy

# The log line after which the run is killed: it then runs the phase named by the key (each line
# is followed by a subprocess or a network round trip, so the run is surely inside that phase).
PHASES = {
    "taking-snapshot": "Creating snapshot",  # `k3s etcd-snapshot save` running
    # checked as the copy was read, so said after it: the copy's manifest upload
    "after-check": "saved and checked",
    "after-copy": "Copied ",  # restore bundle upload, target rotation
    "rotating-local": "off backup-host",  # `k3s etcd-snapshot delete` of the oldest local
}
HOLD_AFTER = 400_000  # bytes into the SSH connection: inside the ~1.5 MB copy


def configs(lab: Lab, tmp_path: Path, port: int) -> tuple[Path, Path]:
    """(config of the killed run, its log a FIFO; config of normal runs), one state_dir."""
    target = lab.ssh_target(port=port, keep=2)
    common: dict[str, object] = {"keep_local": 2, "targets": [target]}
    killed = lab.write_config(tmp_path / "killed.toml", log_file=tmp_path / "log.fifo", **common)
    normal = lab.write_config(tmp_path / "normal.toml", **common)
    return killed, normal


@pytest.fixture
def proxy(lab: Lab):
    """All runs reach sshd through a proxy (pass-through unless told to hold)."""
    with CuttingProxy(("127.0.0.1", lab.sshd.port), hold=True) as started:
        lab.known_hosts.write_text(lab.sshd.known_hosts_line(port=started.port) + "\n")
        yield started


@pytest.mark.parametrize("phase", [*PHASES, "mid-upload"])
def test_kill_9_at_each_phase_then_a_normal_run_recovers_everything(
    lab: Lab, tmp_path: Path, proxy: CuttingProxy, phase: str
) -> None:
    lab.etcd.put("/registry/secrets/default/big", os.urandom(1_500_000))  # incompressible
    killed, normal = configs(lab, tmp_path, proxy.port)
    clock = Clock()
    for _ in range(2):  # so that the killed run has copies to rotate, here and there
        assert cli(lab, normal, clock, "run").code == 0
    before = ours(lab.remote_dir)

    if phase == "mid-upload":
        proxy.cut_after = HOLD_AFTER
    with gated_run(lab, killed, tmp_path / "log.fifo") as (proc, gate):
        if phase == "mid-upload":
            gate.drain()
            assert proxy.held.wait(60), "the upload never reached the hold point"
            assert temporaries(lab.remote_dir), "no upload in progress at the hold point"
        else:
            gate.read_until(PHASES[phase])
        kill_run(proc)
        assert proc.returncode == -9
    proxy.release()
    proxy.cut_after = None
    wait_for_backup_host(lab)

    # Right after the kill: whatever carries a final name is whole; older copies untouched
    # unless the killed run had reached the rotation (which removes the oldest only).
    assert_final_names_whole(lab)
    survivors = [n for n in before if n in ours(lab.remote_dir)]
    assert survivors == before or survivors == before[1:]

    result = cli(lab, normal, clock, "run")
    assert result.code == 0, result.stderr  # the lock died with its holder
    assert_final_names_whole(lab)
    assert snapshots(lab.remote_dir) == ours(lab.snapshot_dir)  # every local one is off-node
    assert len(ours(lab.remote_dir)) == 2
    assert temporaries(lab.remote_dir) == []  # the killed upload's temporary is cleaned up
    verified = cli(lab, normal, clock, "verify")
    assert verified.code == 0, verified.stdout + verified.stderr
    state = json.loads((lab.root / "state" / "state.json").read_text())
    assert state["last_run"]["outcome"] == "success"
