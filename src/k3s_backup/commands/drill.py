"""`k3s-backup drill`: the restore rehearsal. Fetch and verify a copy, restore it with
`etcdutl`/`etcdctl snapshot restore` into a throwaway data dir, start a throwaway `etcd` on free
loopback ports, and compare its revision and key count with inspect's reading of the same file.
The outcome is recorded as `last_drill` in the state file."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k3s_backup.commands.inspect import read_snapshot
from k3s_backup.commands.open_copy import LATEST, damage_named, open_copy
from k3s_backup.config import Config
from k3s_backup.deadline import DRILL_TIMEOUT, shielded, time_limit
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.formats.etcd_db import EtcdDb
from k3s_backup.lock import exclusive_run
from k3s_backup.loopback import free_ports, log_tail, spawn_logged, stop_child
from k3s_backup.monitoring.metrics import publish_metrics
from k3s_backup.report import Reporter
from k3s_backup.state import record_drill

START_TIMEOUT = 60.0  # a large database takes a while to open
STOP_TIMEOUT = 10.0
CTL_TIMEOUT = 60.0
START_ATTEMPTS = 3
MEMBER = "drill"


class DrillError(BackupError):
    """The copy did not restore, or the restored etcd disagrees with the file."""


@dataclass(frozen=True)
class Tools:
    etcd: str
    etcdctl: str
    restore: list[str]  # the restore command prefix: etcdutl's if present, else etcdctl's


def find_tools(environ: Mapping[str, str]) -> Tools | str:
    """The binaries a drill needs, or a message saying which are missing and how to get them."""
    path = environ.get("PATH")
    etcd, etcdctl, etcdutl = (shutil.which(n, path=path) for n in ("etcd", "etcdctl", "etcdutl"))
    missing = [name for name, found in (("etcd", etcd), ("etcdctl", etcdctl)) if not found]
    if etcd is None or etcdctl is None:
        return (
            f"drill needs {' and '.join(missing)} on PATH to restore into a throwaway etcd"
            " (Debian/Ubuntu: apt-get install etcd-server etcd-client; or an etcd release"
            " tarball from github.com/etcd-io/etcd); `inspect` works without them"
        )
    restore = [etcdutl] if etcdutl else [etcdctl]
    return Tools(etcd, etcdctl, restore)


def _run(command: Sequence[str], environ: Mapping[str, str], timeout: float) -> bytes:
    result = subprocess.run(
        list(command),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={**environ, "ETCDCTL_API": "3"},  # etcdctl 3.4 defaults to the v2 API
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise DrillError(f"{Path(command[0]).name} {command[1]} failed: {' '.join(detail[-3:])}")
    return result.stdout


class ThrowawayEtcd:
    """A restored member on free loopback ports, stopped by its PID."""

    def __init__(self, tools: Tools, workdir: Path, environ: Mapping[str, str]) -> None:
        self.tools = tools
        self.workdir = workdir
        self.environ = environ
        self.client_port, self.peer_port = free_ports(2)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "etcd.log"

    def restore(self, snapshot: Path) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        command = [
            *self.tools.restore,
            "snapshot",
            "restore",
            str(snapshot),
            f"--data-dir={self.data_dir}",
            f"--name={MEMBER}",
            f"--initial-cluster={MEMBER}={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
        ]
        _run(command, self.environ, timeout=CTL_TIMEOUT * 10)

    def start(self) -> None:
        command = [
            self.tools.etcd,
            f"--name={MEMBER}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.endpoint}",
            f"--advertise-client-urls={self.endpoint}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={MEMBER}={self.peer_url}",
        ]
        self.proc = spawn_logged(command, self.log_path, self.environ)

    def log_tail(self) -> str:
        return log_tail(self.log_path, 5)

    def ctl(self, *args: str) -> Any:
        command = [
            self.tools.etcdctl,
            f"--endpoints={self.endpoint}",
            "--dial-timeout=2s",
            "--command-timeout=10s",
            *args,
            "-w",
            "json",
        ]
        return json.loads(_run(command, self.environ, timeout=CTL_TIMEOUT))

    def wait_ready(self) -> None:
        """Poll `endpoint status` until it answers, with a deadline; fail if etcd exits."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise DrillError(f"the restored etcd exited at start:\n{self.log_tail()}")
            try:
                self.ctl("endpoint", "status")
                return
            except (DrillError, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise DrillError(
                        f"the restored etcd did not answer within {START_TIMEOUT:.0f} s:\n"
                        f"{self.log_tail()}"
                    ) from None
            time.sleep(0.1)  # between probes only; readiness is the probe's answer

    def revision_and_keys(self) -> tuple[int, int]:
        # Range's `count` is the total in range whatever the limit: no need to list every key.
        reply = self.ctl("get", "", "--prefix", "--keys-only", "--limit=1")
        return int(reply["header"]["revision"]), int(reply.get("count", 0))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_child(proc, STOP_TIMEOUT)


def _restore_and_start(
    tools: Tools, snapshot: Path, workdir: Path, env: Environment
) -> ThrowawayEtcd:
    """A started member; new ports if another process took ours between picking and binding."""
    for attempt in range(START_ATTEMPTS):
        member = ThrowawayEtcd(tools, workdir, env.environ)
        member.restore(snapshot)
        try:
            member.start()
            member.wait_ready()
            return member
        except DrillError as exc:
            with shielded():
                member.stop()
            if "address already in use" not in str(exc) or attempt + 1 == START_ATTEMPTS:
                raise
        except BaseException:  # --timeout or Ctrl-C while it starts: never leave it running
            with shielded():
                member.stop()
            raise
    raise AssertionError("unreachable")


def _rehearse(
    tools: Tools,
    name: str,
    config: Config,
    env: Environment,
    record: dict[str, Any],
    identity: Path | None,
) -> None:
    """Fill `record` as the drill goes; raise DrillError (or another BackupError) on failure."""
    with open_copy(name, lambda: config, env, identity) as copy:
        record.update(name=copy.name, location=copy.location)
        with damage_named(copy), EtcdDb(copy.path) as db:
            reading = read_snapshot(copy, db)
        env.stdout.write(
            f"drill      {copy.name} ({copy.location}; {copy.verified})\n"
            f"inspect    revision {reading.revision}, {len(reading.state.keys)} keys\n"
        )
        with tempfile.TemporaryDirectory(prefix="k3s-backup-drill-") as temp:
            member = _restore_and_start(tools, copy.path, Path(temp), env)
            try:
                revision, keys = member.revision_and_keys()
            finally:
                with shielded():
                    member.stop()
    env.stdout.write(f"restored   revision {revision}, {keys} keys (etcd on {member.endpoint})\n")
    record.update(revision=revision, keys=keys)
    if (revision, keys) != (reading.revision, len(reading.state.keys)):
        raise DrillError(
            f"the restored etcd has revision {revision} and {keys} keys, the file reads as"
            f" revision {reading.revision} and {len(reading.state.keys)} keys"
        )


def drill(
    name: str | None,
    config: Config,
    env: Environment,
    identity: Path | None = None,
    timeout: float = DRILL_TIMEOUT,
) -> ExitCode:
    """The rehearsal under the run lock, so it never reads or records beside a running backup
    (state.json is rewritten by both)."""
    with exclusive_run(config.state_dir):
        return _locked_drill(name, config, env, identity, timeout)


def _locked_drill(
    name: str | None, config: Config, env: Environment, identity: Path | None, timeout: float
) -> ExitCode:
    wanted = name or LATEST
    record: dict[str, Any] = {
        "when": env.now().isoformat(timespec="seconds"),
        "name": wanted,
        "location": None,
        "ok": False,
        "revision": None,
        "keys": None,
        "problem": None,
    }
    tools = find_tools(env.environ)
    code = ExitCode.OK
    if isinstance(tools, str):
        record["problem"], code = tools, ExitCode.USAGE
    else:
        try:
            with time_limit(timeout, f"drill of {wanted}"):
                _rehearse(tools, wanted, config, env, record, identity)
            record["ok"] = True
        except (BackupError, OSError, subprocess.TimeoutExpired) as exc:
            record["problem"] = str(exc)
            code = exc.exit_code if isinstance(exc, BackupError) else ExitCode.FAILED
    record_drill(config.state_dir, record)
    publish_metrics(config, env, Reporter(env, None))  # the textfile shows the drill at once
    if record["ok"]:
        env.stdout.write(f"ok         {record['name']} restores and matches its contents\n")
    else:
        env.stderr.write(f"error: drill of {record['name']} failed: {record['problem']}\n")
    return code
