"""`k3s-backup drill`: the restore rehearsal. Fetch and verify a copy, restore it with
`etcdutl`/`etcdctl snapshot restore` into a throwaway data dir, start a throwaway `etcd` on free
loopback ports, and prove it holds what the file holds: its revision and key count, then every
key, value and mod revision read back and compared with inspect's reading of the same file. It
also checks the snapshot is of this node's cluster and that the restore bundle beside the copy
reads (and decrypts), and times the restore (a recovery-time figure). The outcome is recorded
as `last_drill` in the state file and in the metrics."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from k3s_backup.catalogue.clusters import current_identity
from k3s_backup.catalogue.inventory import local_manifests
from k3s_backup.catalogue.lookup import LATEST, copies_of, find_copies, load_identities
from k3s_backup.catalogue.opening import OpenedSnapshot, SnapshotAccess, damage_named
from k3s_backup.catalogue.reading import Reading, read_snapshot, show_key
from k3s_backup.catalogue.recovery_key import Trust
from k3s_backup.catalogue.retrieval import fetch_bundle
from k3s_backup.cli_options import DRILL_TIMEOUT_OPTION, Context, copy_access_options, pass_context
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.formats.cluster_identity import read_identity
from k3s_backup.formats.etcd_db import EtcdDb
from k3s_backup.monitoring.metrics import publish_metrics
from k3s_backup.plumbing.commands import CommandError, run_command
from k3s_backup.plumbing.deadline import DRILL_TIMEOUT, shielded, time_limit
from k3s_backup.plumbing.etcd_member import EtcdMember
from k3s_backup.plumbing.lock import exclusive_run
from k3s_backup.policy.identity import ClusterIdentity, describe, same_cluster
from k3s_backup.report import Reporter
from k3s_backup.state import record_drill

START_TIMEOUT = 60.0  # a large database takes a while to open
CTL_TIMEOUT = 60.0
START_ATTEMPTS = 3
MEMBER = "drill"
PAGE_KEYS = 500  # keys read back per request when comparing contents


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


def _run(command: Sequence[str | bytes], environ: Mapping[str, str], timeout: float) -> str:
    try:  # etcdctl 3.4 defaults to the v2 API
        result = run_command(command, timeout=timeout, env={**environ, "ETCDCTL_API": "3"})
    except CommandError as exc:
        raise DrillError(str(exc)) from None
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        tool = Path(str(command[0])).name
        raise DrillError(f"{tool} {command[1]!s} failed: {' '.join(detail[-3:])}")
    return result.stdout


class ThrowawayEtcd(EtcdMember):
    """A restored member on free loopback ports, stopped by its PID."""

    def __init__(self, tools: Tools, workdir: Path, environ: Mapping[str, str]) -> None:
        super().__init__(tools.etcd, workdir / "data", workdir / "etcd.log", MEMBER, environ)
        self.tools = tools
        self.workdir = workdir
        self.environ: Mapping[str, str] = environ

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
            except DrillError:  # a timed-out probe included
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

    def key_values(self) -> Iterator[tuple[bytes, bytes, int]]:
        """Every live key with its value and mod revision, in key order, a page at a time
        (a large database is never held in memory at once)."""
        start, last = b"", None  # "" with --from-key: from the first key
        while True:
            reply = self.ctl_bytes("get", start, "--from-key", f"--limit={PAGE_KEYS + 1}")
            page = [kv for kv in reply.get("kvs", []) if base64.b64decode(kv["key"]) != last]
            for kv in page:
                yield (
                    base64.b64decode(kv["key"]),
                    base64.b64decode(kv.get("value", "")),
                    int(kv.get("mod_revision", 0)),
                )
            if not reply.get("more") or not page:
                return
            start = last = base64.b64decode(page[-1]["key"])  # the next page starts there

    def ctl_bytes(self, verb: str, key: bytes, *args: str) -> Any:
        """`etcdctl VERB KEY ARGS -w json` for a key of any bytes (argv takes bytes)."""
        command: list[str | bytes] = [
            self.tools.etcdctl,
            f"--endpoints={self.endpoint}",
            "--dial-timeout=2s",
            "--command-timeout=30s",
            verb,
            *args,
            "-w",
            "json",
            "--",
            key,
        ]
        try:
            return json.loads(_run(command, self.environ, timeout=CTL_TIMEOUT))
        except ValueError as exc:  # a key with a NUL byte cannot be an argument
            raise DrillError(f"cannot read back the key {key!r}: {exc}") from None


def _restore_and_start(
    tools: Tools, snapshot: Path, workdir: Path, env: Environment
) -> ThrowawayEtcd:
    """A started member; new ports if another process took ours between picking and binding
    (the restore names the peer URL, so it is redone with them)."""
    member = ThrowawayEtcd(tools, workdir, env.environ)
    member.start_and_wait(
        member.wait_ready, START_ATTEMPTS, prepare=lambda: member.restore(snapshot)
    )
    return member


def _differs(key: bytes) -> str:
    return f"the restored etcd and the file differ at key {show_key(key)}"


def compare_contents(member: ThrowawayEtcd, db: EtcdDb, reading: Reading) -> int:
    """Every key, value and mod revision read back from the restored etcd equals what the
    file holds; the number of keys compared, or DrillError naming the first that differs."""
    expected = iter(sorted(reading.state.keys.items()))
    compared = 0
    for key, value, mod_revision in member.key_values():
        wanted = next(expected, None)
        if wanted is None:
            raise DrillError(f"{_differs(key)}: the file does not hold it")
        wanted_key, live = wanted
        if wanted_key != key:
            missing = min(wanted_key, key)
            side = "the restored etcd" if missing == wanted_key else "the file"
            raise DrillError(f"{_differs(missing)}: {side} does not hold it")
        if live.mod_revision != mod_revision:
            raise DrillError(
                f"{_differs(key)}: mod revision {mod_revision} restored, {live.mod_revision}"
                " in the file"
            )
        if db.value_at(live.revision_key).value != value:
            raise DrillError(f"{_differs(key)}: the values are not the same bytes")
        compared += 1
    left = next(expected, None)
    if left is not None:
        raise DrillError(f"{_differs(left[0])}: the restored etcd does not hold it")
    return compared


def _check_identity(config: Config, path: Path, env: Environment) -> ClusterIdentity | None:
    """The snapshot's cluster must be this node's (when both are known)."""
    found = read_identity(path, config.state_dir)
    manifests = local_manifests(config)
    expected = current_identity(config, manifests)
    env.stdout.write(f"cluster    {describe(found)}\n")
    if found is not None and expected is not None and not same_cluster(expected, found):
        raise DrillError(
            f"the copy is of another cluster ({describe(found)}) than this node's"
            f" ({describe(expected)}): name a copy of this cluster"
        )
    return found


def _check_bundle(
    config: Config, copy: OpenedSnapshot, access: SnapshotAccess, trust: Trust
) -> str:
    """The restore bundle beside the drilled copy is there, reads, and decrypts."""
    if copy.location == "file":
        return "not checked (a file given by path)"
    env = access.env
    reporter = Reporter(replace(env, stdout=env.stderr), None)
    listed, _ = find_copies(config, reporter, copy.location)
    here = [c for c in copies_of(listed, copy.name) if c.location == copy.location]
    found = fetch_bundle(config, reporter, here, load_identities(access.identity), trust)
    if found is None:
        raise DrillError(
            f"no readable restore bundle beside {copy.name} on {copy.location}: a rebuilt node"
            " would lack the server token (run `k3s-backup run` to ship it; an encrypted one"
            " needs --identity)"
        )
    env.stdout.write(f"bundle     present, token of node {found.node} readable\n")
    return "ok"


def _rehearse(
    tools: Tools,
    name: str,
    config: Config,
    access: SnapshotAccess,
    record: dict[str, Any],
) -> None:
    """Fill `record` as the drill goes; raise DrillError (or another BackupError) on failure."""
    env = access.env
    trust = Trust.of(config.recovery_key_file, access.allow_unauthenticated)
    with access.open(name) as copy:
        record.update(name=copy.name, location=copy.location)
        env.stdout.write(f"drill      {copy.name} ({copy.location}; {copy.verified})\n")
        found = _check_identity(config, copy.path, env)
        record["cluster_uid"] = found.uid if found else None
        record["bundle"] = _check_bundle(config, copy, access, trust)
        with damage_named(copy), EtcdDb(copy.path) as db:
            reading = read_snapshot(copy, db)
            env.stdout.write(
                f"inspect    revision {reading.revision}, {len(reading.state.keys)} keys\n"
            )
            # on disk under the state dir, not in /tmp (often a tmpfs): etcd's data is as large
            config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="drill-", dir=config.state_dir) as temp:
                started = time.monotonic()
                member = _restore_and_start(tools, copy.path, Path(temp), env)
                record["restore_seconds"] = round(time.monotonic() - started, 3)
                try:
                    revision, keys = member.revision_and_keys()
                    record.update(revision=revision, keys=keys)
                    env.stdout.write(
                        f"restored   revision {revision}, {keys} keys in"
                        f" {record['restore_seconds']:.1f} s (etcd on {member.endpoint})\n"
                    )
                    if (revision, keys) != (reading.revision, len(reading.state.keys)):
                        raise DrillError(
                            f"the restored etcd has revision {revision} and {keys} keys, the"
                            f" file reads as revision {reading.revision} and"
                            f" {len(reading.state.keys)} keys"
                        )
                    compared = compare_contents(member, db, reading)
                finally:
                    with shielded():
                        member.stop()
    env.stdout.write(f"contents   {compared} keys: every value and mod revision equal\n")


def drill(
    name: str | None, config: Config, access: SnapshotAccess, timeout: float = DRILL_TIMEOUT
) -> ExitCode:
    """The rehearsal under the run lock, so it never reads or records beside a running backup
    (state.json is rewritten by both)."""
    with exclusive_run(config.state_dir):
        return _locked_drill(name, config, access, timeout)


def _locked_drill(
    name: str | None, config: Config, access: SnapshotAccess, timeout: float
) -> ExitCode:
    env = access.env
    wanted = name or LATEST
    record: dict[str, Any] = {
        "when": env.now().isoformat(timespec="seconds"),
        "name": wanted,
        "location": None,
        "ok": False,
        "revision": None,
        "keys": None,
        "restore_seconds": None,  # the rehearsal's restore: a recovery-time figure
        "cluster_uid": None,
        "bundle": None,
        "problem": None,
    }
    tools = find_tools(env.environ)
    code = ExitCode.OK
    if isinstance(tools, str):
        record["problem"], code = tools, ExitCode.USAGE
    else:
        try:
            with time_limit(timeout, f"drill of {wanted}"):
                _rehearse(tools, wanted, config, access, record)
            record["ok"] = True
        except (BackupError, OSError) as exc:
            record["problem"] = str(exc)
            code = exc.exit_code if isinstance(exc, BackupError) else ExitCode.FAILED
    record_drill(config.state_dir, record)
    publish_metrics(config, env, Reporter(env, None))  # the textfile shows the drill at once
    if record["ok"]:
        env.stdout.write(
            f"ok         {record['name']} restores and matches its contents; recovery time"
            f" of the restore {record['restore_seconds']:.1f} s\n"
        )
    else:
        env.stderr.write(f"error: drill of {record['name']} failed: {record['problem']}\n")
    return code


@click.command("drill")
@click.argument("snapshot", required=False)
@copy_access_options
@DRILL_TIMEOUT_OPTION
@pass_context
def command(
    ctx: Context,
    snapshot: str | None,
    identity: Path | None,
    allow_unauthenticated: bool,
    timeout: float,
) -> int:
    """Restore a copy into a throwaway etcd on loopback and check it (default: latest).

    It takes the run lock (exit 4 while a backup runs) and records its outcome in the state.
    """
    config = ctx.config()  # loaded (and warned about) once
    access = SnapshotAccess(lambda: config, ctx.env, identity, allow_unauthenticated)
    return drill(snapshot, config, access, timeout)
