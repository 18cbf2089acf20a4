"""A throwaway single-member etcd on 127.0.0.1, driven through the real `etcdctl` (API v3)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from k3s_backup.plumbing.etcd_member import EtcdMember
from k3s_backup.plumbing.loopback import Service, wait_for

ETCD = "etcd"
ETCDCTL = "etcdctl"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
CTL_TIMEOUT = 120.0
START_ATTEMPTS = 3


class EtcdError(RuntimeError):
    pass


def etcdctl_env() -> dict[str, str]:
    # etcdctl 3.4 defaults to the v2 API; everything here is v3.
    return {**os.environ, "ETCDCTL_API": "3"}


def etcdctl(
    args: Sequence[str],
    endpoint: str | None = None,
    stdin: bytes | None = None,
    timeout: float = CTL_TIMEOUT,
) -> bytes:
    """Run `etcdctl [--endpoints E] ARGS`; its stdout, or EtcdError with its stderr."""
    command = [ETCDCTL, *([f"--endpoints={endpoint}"] if endpoint else []), *args]
    result = subprocess.run(
        command,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=etcdctl_env(),
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise EtcdError(f"`{' '.join(command)}` failed (exit {result.returncode}): {detail}")
    return result.stdout


def _accepts_connections(endpoint: str, timeout: float) -> bool:
    url = urlsplit(endpoint)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 2379), timeout):
            return True
    except OSError:
        return False


def etcd_healthy(endpoint: str, timeout: float = 1.0, answer_timeout: float | None = None) -> bool:
    """`etcdctl endpoint health`: a linearizable read, so it needs an elected leader. A stopped
    etcd is told at once (nothing listens); a live one gets `answer_timeout` (default
    `timeout`) to answer, which a loaded machine's etcd, busy with fsyncs, can need."""
    if not _accepts_connections(endpoint, timeout):
        return False
    answer = answer_timeout or timeout
    try:
        etcdctl(
            [f"--dial-timeout={timeout}s", f"--command-timeout={answer}s", "endpoint", "health"],
            endpoint=endpoint,
            timeout=timeout + answer + 5,
        )
    except (EtcdError, subprocess.TimeoutExpired):
        return False
    return True


@contextmanager
def plain_snapshot(snapshot: Path) -> Iterator[Path]:
    """The plain snapshot: `snapshot` itself, or the single entry of a `.zip` in a temp dir."""
    if snapshot.suffix != ".zip":
        yield snapshot
        return
    with zipfile.ZipFile(snapshot) as archive, tempfile.TemporaryDirectory() as tmp:
        [entry] = archive.namelist()
        target = Path(tmp) / Path(entry).name
        with archive.open(entry) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        yield target


def snapshot_status(path: Path) -> dict[str, int]:
    """`etcdctl snapshot status -w json`: hash, revision, totalKey, totalSize (no hash check!)."""
    with plain_snapshot(path) as plain:
        out = etcdctl(["snapshot", "status", "-w", "json", str(plain)])
    status: dict[str, int] = json.loads(out)
    return status


def restore_snapshot(
    snapshot: Path,
    data_dir: Path,
    name: str = "default",
    peer_url: str | None = None,
) -> None:
    """`etcdctl snapshot restore` into a new `data_dir` (checks the SHA-256 trailer)."""
    args = ["snapshot", "restore", "--data-dir", str(data_dir), "--name", name]
    if peer_url:
        # The restored membership must name the peer URL the server will be started with.
        args += [
            f"--initial-cluster={name}={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
        ]
    with plain_snapshot(snapshot) as plain:
        etcdctl([*args, str(plain)])


class EtcdServer(EtcdMember, Service):
    """`etcd` with its own data dir and free loopback ports; a context manager."""

    def __init__(
        self,
        workdir: Path,
        data_dir: Path | None = None,
        name: str = "default",
        client_port: int | None = None,
        peer_port: int | None = None,
    ) -> None:
        ports = None if client_port is None or peer_port is None else (client_port, peer_port)
        # A lone member: short raft timers make the first election quick.
        quick = ["--logger=zap", "--heartbeat-interval=25", "--election-timeout=250"]
        data_dir = data_dir or workdir / "etcd-data"
        super().__init__(ETCD, data_dir, workdir / "etcd.log", name, None, ports, quick)
        self.workdir = workdir

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise EtcdError("etcd is not started")
        return self.proc.pid

    def wait_ready(self) -> None:
        proc = self.proc
        if proc is None:
            raise EtcdError("etcd is not started")

        probe_timeout = [0.25]

        def ready() -> bool:
            if proc.poll() is not None:
                raise EtcdError(f"etcd exited with {proc.returncode}:\n{self.log_tail()}")
            # A probe sent before the election waits out its whole timeout: start short, and
            # grow it so that a slow machine still gets an answer.
            healthy = etcd_healthy(self.endpoint, probe_timeout[0])
            probe_timeout[0] = min(probe_timeout[0] * 2, 4.0)
            return healthy

        wait_for(ready, START_TIMEOUT, f"etcd at {self.endpoint} to be healthy")

    def start(self) -> Self:
        fresh = not self.data_dir.exists()

        def prepare() -> None:
            if fresh:  # a retry after a lost port starts again from nothing
                shutil.rmtree(self.data_dir, ignore_errors=True)

        self.workdir.mkdir(parents=True, exist_ok=True)
        if not fresh:
            self.ports_chosen = True  # an existing member's data names its peer URL
        self.start_and_wait(self.wait_ready, START_ATTEMPTS, prepare)
        return self

    def _ctl(self, args: Sequence[str], stdin: bytes | None = None) -> bytes:
        return etcdctl(args, endpoint=self.endpoint, stdin=stdin)

    def put(self, key: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        # The value goes through stdin: any bytes, even ones starting with '-'.
        self._ctl(["put", "--", key], stdin=data)

    def delete(self, key: str) -> int:
        return int(self._ctl(["del", "--", key]).strip() or 0)

    def get_all(self, prefix: str = "") -> dict[str, bytes]:
        reply: dict[str, Any] = json.loads(
            self._ctl(["get", "--prefix", "-w", "json", "--", prefix])
        )
        return {
            base64.b64decode(kv["key"]).decode(errors="surrogateescape"): base64.b64decode(
                kv.get("value", "")
            )
            for kv in reply.get("kvs", [])
        }

    def snapshot_save(self, path: Path) -> Path:
        self._ctl(["snapshot", "save", str(path)])
        return path
