"""A backup host as `k3s-backup host-setup` makes it, for real: an unprivileged account created
with useradd (removed afterwards), its root-owned authorized_keys with the forced command, the
lab's sshd letting that account log in with it.

The account cannot traverse pytest's 0700 temporary tree, so its directory and home live in a
0755 directory of their own under /tmp, removed afterwards.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import k3s_backup
from k3s_backup.cli import main
from k3s_backup.config import SshTargetConfig
from k3s_backup.environment import Environment
from k3s_backup.lab.lab import Lab

CLUSTER = "k3s-lab"
SYSTEM_PYTHON = Path("/usr/bin/python3")  # the account may not reach the tests' interpreter
SOURCE = Path(k3s_backup.__file__).parent.parent


def _program(base: Path) -> Path:
    """What the forced command runs: the service on the system's Python, with no package but
    the standard library and k3s_backup's own source (what the service may import)."""
    program = base / "bin" / "k3s-backup"
    program.parent.mkdir(mode=0o755)
    program.write_text(
        f'#!/bin/sh\nPYTHONPATH={SOURCE} exec {SYSTEM_PYTHON} -s -m k3s_backup.service "$@"\n'
    )
    program.chmod(0o755)
    return program


@dataclass
class ServiceHost:
    lab: Lab
    user: str
    base: Path
    directory: Path
    home: Path

    def host_setup(self, mode: str, *extra: str, key: Path | None = None) -> str:
        """Run `k3s-backup host-setup` as root; its output. Asserts it succeeded."""
        code, out, err = self.try_host_setup(mode, *extra, key=key)
        assert code == 0, err
        return out

    def try_host_setup(
        self, mode: str, *extra: str, key: Path | None = None, environ: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """Run `k3s-backup host-setup` as root (in the lab's environment unless `environ`);
        its exit code, stdout and stderr."""
        public = (key or self.lab.sshd.client_key_pub).read_text().strip()
        out, err = io.StringIO(), io.StringIO()
        argv = ["host-setup", "--dir", str(self.directory), "--key", public]
        argv += ["--from", "127.0.0.1", "--cluster", CLUSTER, "--mode", mode]
        argv += ["--user", self.user, "--home", str(self.home)]
        argv += ["--program", str(self.base / "bin" / "k3s-backup")]
        argv += ["--root", str(self.etc_root), *extra]
        env = Environment(stdout=out, stderr=err, environ=environ or self.lab.env())
        return main(argv, env), out.getvalue(), err.getvalue()

    @property
    def etc_root(self) -> Path:
        """host-setup's --root: where its cron file or systemd units go."""
        return self.base / "etc-root"

    def boot_systemd(self) -> None:
        """Make the host one whose init is systemd (sd_booted: /run/systemd/system); the
        lab's stand-in systemctl answers host-setup's `systemctl enable`."""
        (self.etc_root / "run" / "systemd" / "system").mkdir(parents=True, exist_ok=True)

    def target(self, mode: str, **overrides: object) -> dict[str, object]:
        return self.lab.ssh_target(user=self.user, path=self.directory, mode=mode, **overrides)

    def config(self, mode: str, **overrides: object) -> SshTargetConfig:
        return SshTargetConfig.model_validate(self.target(mode, **overrides))

    def ssh(self, *argv: str, key: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        """OpenSSH's client with the node's key, as an intruder on the node would use it."""
        sshd = self.lab.sshd
        command = ["ssh", "-i", str(key or sshd.client_key), "-p", str(sshd.port)]
        command += ["-o", f"UserKnownHostsFile={self.lab.known_hosts}", "-o", "BatchMode=yes"]
        command += ["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"]
        command += [f"{self.user}@{sshd.host}", *argv]
        return subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)


def _needs_root() -> None:
    if os.geteuid() != 0 or shutil.which("useradd") is None or not SYSTEM_PYTHON.exists():
        pytest.skip("a real backup-host account needs root, useradd and /usr/bin/python3")


@contextmanager
def service_host(lab: Lab) -> Iterator[ServiceHost]:
    _needs_root()
    base = Path(tempfile.mkdtemp(prefix="k3s-backup-host-", dir="/tmp"))
    base.chmod(0o755)
    _program(base)
    user = f"k3sb{secrets.token_hex(4)}"
    host = ServiceHost(lab, user, base, base / "k3s-etcd", base / "home")
    lab.sshd.home_key_users.append(user)
    lab.sshd.restart()
    try:
        yield host
    finally:
        subprocess.run(["userdel", "--force", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
