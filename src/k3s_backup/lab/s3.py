"""A real S3-speaking server for tests: moto's server mode, on loopback, stopped by PID."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from k3s_backup.plumbing.loopback import Service, free_port, spawn_logged, stop_child, wait_for

START_TIMEOUT = 30.0
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"


class S3Server(Service):
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "moto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        console = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        if console:
            return [console, "-H", "127.0.0.1", "-p", str(self.port)]
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def _up(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"moto_server exited: {self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> S3Server:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc = spawn_logged(self._command(), self.log_path)
        wait_for(self._up, START_TIMEOUT, f"moto S3 server at {self.endpoint_url}")
        return self

    def write_credentials(self, path: Path) -> Path:
        path.write_text(
            f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        )
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        # Our own child: terminate by its PID, kill if it lingers (its argv0 is python, so
        # ports.stop_pid's program check does not apply).
        proc, self._proc = self._proc, None
        stop_child(proc, 10)
