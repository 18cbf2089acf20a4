"""The whole test lab: real etcd behind a fake `k3s` and `systemctl`, a real sshd as backup host."""

from __future__ import annotations

import json
import os
from pathlib import Path

from k3s_backup.catalogue import recovery_key
from k3s_backup.lab.etcd import EtcdServer
from k3s_backup.lab.fake_k3s import STATE_FILENAME, FakeK3sState, install_fake_k3s
from k3s_backup.lab.fake_systemctl import install_fake_systemctl
from k3s_backup.lab.sshd import SshServer
from k3s_backup.plumbing.loopback import Service, stop_pid


def _toml_value(value: object) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_table(table: dict[str, object]) -> list[str]:
    return [f"{key} = {_toml_value(v)}" for key, v in table.items() if v is not None]


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(i, dict) for i in value)


def to_toml(data: dict[str, object]) -> str:
    """TOML for a flat config: scalars, then tables of scalars, then arrays of such tables."""
    simple = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_array(v)}
    lines = _toml_table(simple)
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]", *_toml_table(value)]
        elif _is_table_array(value):
            assert isinstance(value, list)
            for item in value:
                lines += ["", f"[[{key}]]", *_toml_table(item)]
    return "\n".join(lines) + "\n"


class Lab(Service):
    """Everything under `root`; a context manager. Stops by PID, even if half started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin_dir = root / "bin"
        self.data_dir = root / "k3s"
        self.snapshot_dir = self.data_dir / "server" / "db" / "snapshots"
        self.state_file = self.bin_dir / STATE_FILENAME
        self.remote_dir = root / "backup-host" / "k3s-etcd"
        self.known_hosts = root / "known_hosts"
        self.recovery_key = root / "recovery.key"  # the cluster's, as setup would make it
        # etcd runs from K3s's own data dir, so a cluster-reset restore swaps what it serves.
        self.etcd = EtcdServer(root / "etcd", data_dir=self.data_dir / "server" / "db" / "etcd")
        self.sshd = SshServer(root / "sshd")

    def start(self) -> Lab:
        try:
            self.bin_dir.mkdir(parents=True, exist_ok=True)
            self.etcd.start()
            self.sshd.start()
            install_fake_k3s(self.bin_dir, self._k3s_state())
            install_fake_systemctl(self.bin_dir, self.state_file)
            (self.root / "backup-host").mkdir(exist_ok=True)
            self.remote_dir.mkdir(mode=0o700, exist_ok=True)  # as `setup` makes it
            self.remote_dir.chmod(0o700)
            self.sshd.write_known_hosts(self.known_hosts)
            if not self.recovery_key.exists():
                recovery_key.save(self.recovery_key, recovery_key.decode(recovery_key.generate()))
        except BaseException:
            self.stop()
            raise
        return self

    def _k3s_state(self) -> FakeK3sState:
        return FakeK3sState(
            etcd_endpoint=self.etcd.endpoint,
            data_dir=self.data_dir,
            etcd_name=self.etcd.name,
            etcd_client_port=self.etcd.client_port,
            etcd_peer_port=self.etcd.peer_port,
            etcd_pid=self.etcd.pid,
            etcd_workdir=self.etcd.workdir,
        )

    def stop(self) -> None:
        """Stop sshd and whichever etcd runs now (fake systemctl may have replaced ours)."""
        errors: list[BaseException] = []
        for step in (self.sshd.stop, self._stop_k3s_etcd, self.etcd.stop):
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                errors.append(exc)
        if errors:
            raise errors[0]

    def _stop_k3s_etcd(self) -> None:
        if not self.state_file.exists():
            return
        pid = FakeK3sState.load(self.state_file).etcd_pid
        if pid is not None:
            stop_pid(pid, "etcd")

    def env(self) -> dict[str, str]:
        """os.environ with the fake `k3s` and `systemctl` first on PATH."""
        environ = dict(os.environ)
        environ["PATH"] = os.pathsep.join([str(self.bin_dir), environ.get("PATH", os.defpath)])
        return environ

    def write_config(self, path: Path, **overrides: object) -> Path:
        """The product's TOML config for this lab; keyword arguments replace top-level keys
        (`targets=[{...}]`, `k3s={...}` included; a None value drops the key)."""
        data: dict[str, object] = {
            "cluster_name": "k3s-lab",
            # K3s names its node after the host; the stand-in's node name is its own.
            "node_name": FakeK3sState.load(self.state_file).node_name,
            "snapshot_dir": self.snapshot_dir,
            "keep_local": 3,
            "log_file": self.root / "k3s-backup.log",
            "state_dir": self.root / "state",
            "recovery_key_file": self.recovery_key,
            "k3s": {"bin": self.bin_dir / "k3s", "data_dir": self.data_dir},
            "targets": [self.ssh_target()],
        }
        data.update(overrides)
        path.write_text(to_toml({k: v for k, v in data.items() if v is not None}))
        path.chmod(0o600)  # as `config init` and `setup` write it (it may hold secret URLs)
        return path

    def ssh_target(self, **overrides: object) -> dict[str, object]:
        target: dict[str, object] = {
            "name": "backup-host",
            "type": "ssh",
            "host": self.sshd.host,
            "user": self.sshd.user,
            "port": self.sshd.port,
            "path": self.remote_dir,
            "identity_file": self.sshd.client_key,
            "known_hosts": self.known_hosts,
            "keep": 7,
            "retries": 0,  # one fault, one attempt; the tests of retrying ask for them
        }
        target.update(overrides)
        return target
