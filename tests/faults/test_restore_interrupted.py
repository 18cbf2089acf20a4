"""An interrupted restore is a state, not a crash: Ctrl-C (SIGINT to the process group, as a
terminal sends it) or SIGTERM at a step leaves this node in the state the message describes,
with the commands to go on or back, and the verified file kept.

The restore runs as a real process; the stand-in `systemctl` or `k3s` holds at a named point
(lab.hold) so the signal arrives while that step runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from k3s_backup.lab.etcd import EtcdServer
from k3s_backup.lab.fake_k3s import FakeK3sState
from k3s_backup.lab.fake_systemctl import install_fake_systemctl
from k3s_backup.lab.hold import Hold
from k3s_backup.lab.lab import Lab
from k3s_backup.plumbing.loopback import stat_fields, stop_pid
from tests.commands.test_restore import (
    change_keys,
    db_dir,
    etcd_olds,
    k3s_active,
    set_state,
    write_config,
    write_keys,
)
from tests.support.faults import WAIT, Clock, cli, spawn_cli


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


# ---- another server, over SSH ------------------------------------------------------------


@dataclass
class Peer:
    """Another server reached through the lab's sshd: its own real etcd, its own stand-in
    `systemctl` first on the PATH of SSH sessions (sshd's SetEnv)."""

    root: Path
    state_file: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def systemctl(self, *args: str) -> int:
        command = [str(self.bin_dir / "systemctl"), *args]
        return subprocess.run(command, check=False, timeout=WAIT).returncode

    def active(self) -> bool:
        return self.systemctl("is-active", "--quiet", "k3s") == 0

    def hold(self, point: str) -> Hold:
        gate = Hold(self.root / "hold", point)
        gate.arm()
        state = FakeK3sState.load(self.state_file)
        state.hold_at, state.hold_dir = point, gate.directory
        state.save(self.state_file)
        return gate


@pytest.fixture
def peer(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Peer]:
    root = tmp_path / "peer"
    etcd = EtcdServer(root / "etcd", data_dir=root / "k3s" / "server" / "db" / "etcd")
    state = FakeK3sState(
        etcd_endpoint=etcd.endpoint,
        data_dir=root / "k3s",
        etcd_name=etcd.name,
        etcd_client_port=etcd.client_port,
        etcd_peer_port=etcd.peer_port,
        etcd_workdir=etcd.workdir,
        service_active=False,
    )
    (root / "bin").mkdir(parents=True)
    found = Peer(root, root / "bin" / "fake-k3s.json")
    state.save(found.state_file)
    install_fake_systemctl(found.bin_dir, found.state_file)
    plain = lab.sshd._config()
    with_path = plain + f"SetEnv PATH={found.bin_dir}:/usr/bin:/bin\n"
    monkeypatch.setattr(lab.sshd, "_config", lambda: with_path)
    lab.sshd.restart()
    assert found.systemctl("start", "k3s") == 0 and found.active()
    try:
        yield found
    finally:
        pid = FakeK3sState.load(found.state_file).etcd_pid
        if pid is not None:
            stop_pid(pid, "etcd")


def ha_config(lab: Lab, path: Path, peer: Peer) -> Path:
    config = write_config(lab, path)
    text = config.read_text().replace("[restore]\nready_timeout = 60\n", "")
    text += (
        "\n[restore]\nready_timeout = 60\n\n[[restore.servers]]\n"
        f'host = "{lab.sshd.host}"\nuser = "{lab.sshd.user}"\nport = {lab.sshd.port}\n'
        f'identity_file = "{lab.sshd.client_key}"\nknown_hosts = "{lab.known_hosts}"\n'
        f'data_dir = "{peer.root / "k3s"}"\n'
    )
    config.write_text(text)
    return config


def test_ctrl_c_after_a_peer_stopped_starts_it_again(lab: Lab, tmp_path: Path, peer: Peer) -> None:
    config = ha_config(lab, tmp_path / "ha.toml", peer)
    write_keys(lab)
    assert cli(lab, config, Clock(), "run").code == 0
    keys = lab.etcd.get_all()
    gate = peer.hold("stop")  # the peer's K3s is down, its `systemctl stop` not yet returned
    proc = spawn_cli(lab, config, "restore", "--yes")
    gate.wait_reached(proc)
    os.killpg(proc.pid, signal.SIGINT)
    gate.release()
    code, _out, err = finish(proc)
    assert code == 130, err
    assert "interrupted by SIGINT before step 2" in err
    assert "Nothing was restored" in err and "K3s was started again" in err
    assert f"Started K3s again on server {lab.sshd.user}@{lab.sshd.host}." in err
    assert peer.active() and k3s_active(lab)
    assert lab.etcd.get_all() == keys


def _connection_process(descendant: int, listener: int) -> int:
    """The sshd process serving the connection `descendant` runs under (the listener's child)."""
    pid = descendant
    while True:
        parent = int(stat_fields(pid)[1])
        if parent == listener:
            return pid
        assert parent > 1, f"{descendant} does not run under sshd {listener}"
        pid = parent


def test_a_lost_ssh_link_while_a_peer_stops_says_so_and_starts_it_again(
    lab: Lab, tmp_path: Path, peer: Peer
) -> None:
    config = ha_config(lab, tmp_path / "ha.toml", peer)
    write_keys(lab)
    assert cli(lab, config, Clock(), "run").code == 0
    keys = lab.etcd.get_all()
    gate = peer.hold("stop")
    proc = spawn_cli(lab, config, "restore", "--yes")
    stand_in = gate.wait_reached(proc)
    os.kill(_connection_process(stand_in, lab.sshd.pid), signal.SIGKILL)  # the link drops
    gate.release()
    code, _out, err = finish(proc)
    assert code == 1, err
    assert "Traceback" not in err
    assert "step 1b failed" in err and "the SSH link was lost during `systemctl stop k3s`" in err
    assert "Nothing was restored" in err
    assert f"Started K3s again on server {lab.sshd.user}@{lab.sshd.host}." in err
    assert peer.active() and k3s_active(lab)
    assert lab.etcd.get_all() == keys


def test_ctrl_c_after_the_reset_leaves_the_peer_stopped_and_its_commands_go_on(
    lab: Lab, tmp_path: Path, peer: Peer
) -> None:
    """Once this node holds the snapshot, the peer must not rejoin with its old data: it stays
    stopped, and the printed commands (ssh lines included), run as printed, finish the job."""
    config = ha_config(lab, tmp_path / "ha.toml", peer)
    at_backup = write_keys(lab)
    assert cli(lab, config, Clock(), "run").code == 0
    change_keys(lab)
    gate = hold(lab, "cluster-reset")
    proc = spawn_cli(lab, config, "restore", "--yes")
    gate.wait_reached(proc)
    os.killpg(proc.pid, signal.SIGINT)
    gate.release()
    code, _out, err = finish(proc)
    assert code == 130, err
    assert f"Stopped by this restore, still stopped: {lab.sshd.user}@{lab.sshd.host}" in err
    assert not peer.active() and not k3s_active(lab)
    go_on = re.search(r"To go on with the restore, run in order: (.+)", err)
    assert go_on, err
    commands = go_on.group(1).split("; ")
    runnable = [c for c in commands if c.startswith(("systemctl ", "ssh "))]
    assert [c.split()[0] for c in runnable] == ["systemctl", "ssh", "ssh"]
    for command in runnable:  # as the operator would paste them
        done = subprocess.run(
            ["bash", "-c", command], env=lab.env(), capture_output=True, text=True, timeout=WAIT
        )
        assert done.returncode == 0, (command, done.stderr)
    assert lab.etcd.get_all() == at_backup
    assert peer.active()
    [moved] = (peer.root / "k3s" / "server").glob("db.bak-*")  # its old data, kept aside
    assert (moved / "etcd" / "member").is_dir()
