"""A throwaway OpenSSH server on 127.0.0.1 with its own host key and one authorized client key."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
from pathlib import Path

from k3s_backup.plumbing.loopback import (
    Service,
    free_port,
    log_tail,
    spawn_logged,
    stop_child,
    wait_for,
)

SSHD = Path("/usr/sbin/sshd")  # absolute: sshd re-executes itself for each connection
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3


class SshServerError(RuntimeError):
    pass


def ssh_keygen(path: Path, comment: str) -> None:
    """A new ed25519 key pair without passphrase at `path` and `path`.pub."""
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)  # ssh-keygen would ask before overwriting
    command = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
    subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=True)


def read_banner(host: str, port: int, timeout: float = 1.0) -> bytes:
    """The SSH identification line the server sends first; OSError if there is none."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(256)
            if not chunk:
                raise ConnectionError("closed before the SSH banner")
            data += chunk
    return data.split(b"\n", 1)[0].rstrip(b"\r")


class SshServer(Service):
    """`sshd -D` on a free loopback port; a context manager."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.host_key = workdir / "ssh_host_ed25519_key"
        self.host_key_pub = workdir / "ssh_host_ed25519_key.pub"
        self.client_key = workdir / "id_ed25519"
        self.client_key_pub = workdir / "id_ed25519.pub"
        self.authorized_keys = workdir / "authorized_keys"
        self.config_path = workdir / "sshd_config"
        self.log_path = workdir / "sshd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        # Accounts that log in with their own ~/.ssh/authorized_keys (a test's `host-setup`
        # account), instead of the lab's one file: set, then restart().
        self.home_key_users: list[str] = []

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise SshServerError("sshd is not started")
        return self._proc.pid

    def _config(self) -> str:
        lines = [
            "ListenAddress 127.0.0.1",
            f"Port {self.port}",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "StrictModes no",  # the lab lives under a world-traversable temp dir
            f"PidFile {self.workdir / 'sshd.pid'}",
            "UsePAM no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
        ]
        if self.home_key_users:  # a Match block must come last
            lines += [f"Match User {','.join(self.home_key_users)}"]
            lines += ["    AuthorizedKeysFile .ssh/authorized_keys"]
        return "\n".join(lines) + "\n"

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        PRIVSEP_DIR.chmod(0o755)  # sshd refuses a privilege separation dir others can write
        if not self.host_key.exists():
            ssh_keygen(self.host_key, "k3s-backup-lab-host")
        if not self.client_key.exists():
            ssh_keygen(self.client_key, "k3s-backup-lab-client")
            self.authorized_keys.write_text(self.client_key_pub.read_text())
        self.config_path.write_text(self._config())

    def _launch(self) -> subprocess.Popen[bytes]:
        command = [str(SSHD), "-D", "-e", "-f", str(self.config_path)]
        return spawn_logged(command, self.log_path)

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        def ready() -> bool:
            if proc.poll() is not None:
                raise SshServerError(
                    f"sshd exited with {proc.returncode}:\n{log_tail(self.log_path)}"
                )
            try:
                return read_banner(self.host, self.port).startswith(b"SSH-2.0-")
            except OSError:
                return False

        wait_for(ready, START_TIMEOUT, f"sshd on {self.host}:{self.port} to send its banner")

    def start(self) -> SshServer:
        """Start (or keep running); on the same port as before unless another process took it."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        for attempt in range(START_ATTEMPTS):
            self._prepare()
            self._proc = self._launch()
            try:
                self._wait_ready(self._proc)
                return self
            except BaseException as exc:
                self.stop()
                if "Address already in use" not in str(exc) or attempt + 1 == START_ATTEMPTS:
                    raise
            self.port = free_port()
        raise AssertionError("unreachable")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_child(proc, STOP_TIMEOUT)

    def restart(self) -> SshServer:
        self.stop()
        return self.start()

    def regenerate_host_key(self) -> None:
        """A new host key, as after a reinstall: clients holding the old one must refuse."""
        ssh_keygen(self.host_key, "k3s-backup-lab-host")
        self.restart()

    def known_hosts_line(self, port: int | None = None) -> str:
        """`[127.0.0.1]:PORT ssh-ed25519 AAAA...`; `port` for a proxy in front of this server."""
        port = port or self.port
        key_type, key = self.host_key_pub.read_text().split()[:2]
        host = self.host if port == 22 else f"[{self.host}]:{port}"
        return f"{host} {key_type} {key}"

    def write_known_hosts(self, path: Path) -> Path:
        path.write_text(self.known_hosts_line() + "\n")
        return path
