"""`k3s-backup doctor [--json]`: the guide's troubleshooting section as code. Each check prints
OK / WARN / FAIL, what it saw, and the exact command that fixes it. Exit 1 on any FAIL."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import click
import yaml

from k3s_backup.catalogue.inventory import target_copies
from k3s_backup.checks import FAIL, OK, WARN, freshness, human_age
from k3s_backup.cli_options import ROOT_OPTION, Context, epilog, pass_context
from k3s_backup.config import (
    Config,
    LocalTargetConfig,
    S3TargetConfig,
    SshTargetConfig,
    TargetConfig,
    load_config,
)
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.plumbing.commands import CommandError, run_command
from k3s_backup.policy.schedule import Schedule, longest_gap
from k3s_backup.policy.schedule import parse as parse_schedule
from k3s_backup.report import human_size, plural, shown_time
from k3s_backup.scheduling import SystemPaths, config_file, installed_schedules
from k3s_backup.sources.estimate import snapshot_size_estimate
from k3s_backup.sources.factory import choose_source
from k3s_backup.ssh import nodekeys
from k3s_backup.ssh.errors import KeyRefusedError
from k3s_backup.ssh.hostkeys import (
    HostKeyChanged,
    fetch_host_key,
    known_hosts_host,
    known_key,
    shown,
)
from k3s_backup.ssh.keyfile import KeyFileError
from k3s_backup.state import read_state
from k3s_backup.targets.base import Probes, probes_of
from k3s_backup.targets.factory import open_target, s3_backend
from k3s_backup.targets.service import ServiceTarget
from k3s_backup.targets.ssh import missing_directory_fix

LOG_TAIL_LINES = 400
SHOWN_ERRORS = 5


@dataclass
class Check:
    name: str
    status: str
    saw: str
    fix: str | None = None


Checks = Iterator[Check]


class Doctor:
    def __init__(self, config: Config, env: Environment, paths: SystemPaths) -> None:
        self.config = config
        self.env = env
        self.paths = paths

    def all(self) -> Checks:
        yield from self.schedule()
        yield self.datastore()
        yield self.snapshot_dir()
        for target in self.config.targets:
            if isinstance(target, SshTargetConfig):
                yield from self.ssh(target)
            elif isinstance(target, LocalTargetConfig):
                yield self.local_target(target)
            else:
                yield self.any_target(target)
                if isinstance(target, S3TargetConfig) and target.object_lock != "off":
                    yield self.s3_object_lock(target)
        yield self.last_run()
        yield self.log()

    # -- services ---------------------------------------------------------------------------

    def systemctl_active(self, name: str, unit: str, fix: str) -> Check:
        try:
            done = run_command(["systemctl", "is-active", unit], timeout=30, env=self.env.environ)
        except CommandError as exc:
            said = "systemctl not found" if exc.not_found else str(exc)
            return Check(name, WARN, f"{said}: cannot tell whether {unit} runs")
        state = done.stdout.strip() or done.stderr.strip() or f"exit {done.returncode}"
        if done.returncode == 0:
            return Check(name, OK, f"{unit} is {state}")
        return Check(name, FAIL, f"{unit} is {state}", fix)

    def schedule(self) -> Checks:
        found = installed_schedules(self.paths)
        fix = "k3s-backup setup"
        if not found:
            yield Check("schedule", FAIL, f"none installed ({self.paths.cron} missing)", fix)
        elif any(i.schedule is None for i in found):
            bad = next(i for i in found if i.schedule is None)
            yield Check("schedule", FAIL, f"{bad.path} is not usable: {bad.problem}", fix)
        elif len(found) > 1:
            both = " and ".join(str(i.path) for i in found)
            yield Check("schedule", WARN, f"both {both} are installed: runs twice", fix)
        else:
            one = found[0]
            assert one.schedule is not None
            saw = f"{one.schedule.expression!r} ({one.scheduler}) in {one.path}"
            if one.schedule.cron != parse_schedule(self.config.schedule).cron:
                saw += f", but the configuration says {self.config.schedule!r}"
                yield Check("schedule", WARN, saw, fix)
            else:
                yield Check("schedule", OK, saw)
        scheduler = found[0].scheduler if found else self.config.scheduler
        if scheduler == "systemd":
            unit, fix = "k3s-backup.timer", "systemctl enable --now k3s-backup.timer"
        else:
            unit, fix = "cron", "systemctl enable --now cron"
        yield self.systemctl_active("scheduler", unit, fix)
        yield self.systemctl_active("k3s", "k3s", "systemctl start k3s; journalctl -u k3s -n 50")

    # -- this node --------------------------------------------------------------------------

    def external_endpoint(self) -> str | None:
        directory = self.config.k3s.config_dir
        files = [directory / "config.yaml", *sorted((directory / "config.yaml.d").glob("*.yaml"))]
        for path in files:
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(data, dict) and data.get("datastore-endpoint"):
                return f"datastore-endpoint in {path}"
        return None

    def datastore(self) -> Check:
        check = self._datastore()
        choice = choose_source(self.config)
        check.saw += f"; source {choice.kind} ({choice.reason})"
        return check

    def _datastore(self) -> Check:
        db = self.config.k3s.data_dir / "server" / "db"
        external = self.external_endpoint()
        if external:
            return Check(
                "datastore",
                FAIL,
                f"external datastore ({external}): K3s keeps no data on this node to back up",
                "back the external database up with its own tools; remove the cron job with"
                " `k3s-backup uninstall`",
            )
        if (db / "etcd" / "member" / "wal").is_dir():
            return Check("datastore", OK, f"embedded etcd ({db / 'etcd'})")
        if (db / "state.db").exists():
            if choose_source(self.config).kind == "sqlite":
                return Check(
                    "datastore", OK, f"SQLite ({db / 'state.db'}), backed up by the sqlite source"
                )
            return Check(
                "datastore",
                FAIL,
                f"SQLite ({db / 'state.db'}): `k3s etcd-snapshot` cannot back it up (K3s says"
                f" 'etcd datastore disabled'), and source = {self.config.source!r}",
                'set source = "sqlite" (or "auto") in the configuration, or move K3s to'
                " embedded etcd (`k3s server --cluster-init`, see the K3s docs)",
            )
        return Check(
            "datastore",
            FAIL,
            f"neither {db / 'etcd' / 'member' / 'wal'} nor {db / 'state.db'} exists",
            "check k3s.data_dir in the configuration (K3s's --data-dir)",
        )

    def snapshot_dir(self) -> Check:
        directory = self.config.snapshot_dir
        if not directory.is_dir():
            return Check(
                "snapshot dir", FAIL, f"{directory} does not exist", f"mkdir -p -m 700 {directory}"
            )
        free = shutil.disk_usage(directory).free
        size = snapshot_size_estimate(self.config)
        needed = size * (self.config.keep_local + 1)
        saw = f"{directory}: {human_size(free)} free"
        if free < needed:
            return Check(
                "snapshot dir",
                FAIL,
                f"{saw}, keep_local = {self.config.keep_local} needs about {human_size(needed)}"
                f" ({self.config.keep_local + 1} x {human_size(size)})",
                f"free space on {directory}, or lower keep_local in the configuration",
            )
        return Check("snapshot dir", OK, f"{saw} (needs ~{human_size(needed)})")

    # -- targets ----------------------------------------------------------------------------

    def ssh(self, target: SshTargetConfig) -> Checks:
        prefix = f"{target.name}: "
        key = self.key(target)
        yield key
        host_key = self.host_key(target)
        yield host_key
        if key.status == FAIL or host_key.status == FAIL:
            return
        if target.mode != "sftp":
            yield from self.service(target, prefix)
            return
        yield Check(
            prefix + "restriction",
            WARN,
            'mode = "sftp": the node\'s key is a shell on the backup host (an intruder on this'
            " node can delete or overwrite every copy there)",
            'the two host commands `k3s-backup setup` prints, then mode = "append-only"'
            " (README: The backup host)",
        )
        yield from self.remote(target, prefix)

    def service(self, target: SshTargetConfig, prefix: str) -> Checks:
        """The key must start `k3s-backup serve` and nothing else."""
        fix = "on the backup host, run the host-setup line `k3s-backup setup` prints"
        with open_target(target, self.config.cluster_name) as opened:
            service = probes_of(opened)
            assert isinstance(service, ServiceTarget)  # what open_target makes for the mode
            try:
                shell = service.opens_shell()
            except BackupError as exc:
                yield Check(prefix + "connection", FAIL, str(exc), "check network and sshd")
                return
            if shell:
                saw = f"{target.user}@{target.host} runs any command for the node's key"
                yield Check(prefix + "restriction", FAIL, saw + ": it still opens a shell", fix)
            else:
                saw = "the node's key runs only `k3s-backup serve` there"
                yield Check(prefix + "restriction", OK, saw)
            try:
                count = len(target_copies(opened, self.config.cluster_name))
                service.check_writable()
            except BackupError as exc:
                yield Check(prefix + "service", FAIL, str(exc), fix)
                return
            yield Check(prefix + "service", OK, f"{target.mode}; lists {count} copies of ours")
            yield self.room(prefix, str(target.path), target.keep, service.free_space())

    def key(self, target: SshTargetConfig) -> Check:
        name, path = f"{target.name}: key", target.identity_file
        if not path.exists():
            return Check(name, FAIL, f"{path} does not exist", "k3s-backup setup")
        try:
            key_fingerprint = nodekeys.key_fingerprint(path)
        except KeyFileError as exc:
            return Check(name, FAIL, exc.problem, exc.fix)
        problem = nodekeys.unsafe_permissions(path)
        if problem:
            return Check(name, FAIL, f"{path}: {problem}", f"chmod 600 {path}")
        return Check(name, OK, f"{path} ({key_fingerprint}), mode 0600")

    def host_key(self, target: SshTargetConfig) -> Check:
        name = f"{target.name}: host key"
        host = known_hosts_host(target.host, target.port)
        known = known_key(target.known_hosts, target.host, target.port)
        types = [k.get_name() for k in known] or None
        try:
            offered = fetch_host_key(target.host, target.port, float(target.connect_timeout), types)
        except BackupError as exc:
            return Check(name, FAIL, str(exc), f"check that sshd runs on {host}")
        if not known:
            return Check(
                name,
                FAIL,
                f"{host} offers {shown(offered)}, which is not in {target.known_hosts}",
                "k3s-backup setup (shows the fingerprint and asks before trusting it)",
            )
        if not any(k == offered for k in known):
            changed = HostKeyChanged(target.host, target.port, target.known_hosts, known, offered)
            return Check(name, FAIL, changed.problem, changed.fix)
        return Check(name, OK, f"{shown(offered)} is in {target.known_hosts}")

    def remote(self, target: SshTargetConfig, prefix: str) -> Checks:
        with open_target(target, self.config.cluster_name) as opened:
            probes = probes_of(opened)
            try:
                probes.connect()
            except KeyRefusedError:
                public = nodekeys.public_line(target.identity_file)
                yield Check(
                    prefix + "connection",
                    FAIL,
                    f"{target.user}@{target.host} refused the key {target.identity_file}",
                    f"add this line to ~{target.user}/.ssh/authorized_keys on {target.host}:"
                    f" {public}",
                )
                return
            except BackupError as exc:
                yield Check(prefix + "connection", FAIL, str(exc), "check network and sshd")
                return
            yield Check(
                prefix + "connection",
                OK,
                f"{target.user}@{target.host}:{target.port} (key auth, no prompts,"
                f" {target.connect_timeout}s timeout)",
            )
            directory = self.remote_dir(target, prefix, probes)
            yield directory
            if directory.status == OK:
                yield self.room(prefix, str(target.path), target.keep, probes.free_space())

    def remote_dir(
        self,
        target: SshTargetConfig,
        prefix: str,
        probes: Probes,
    ) -> Check:
        name = prefix + "directory"
        try:
            if not probes.directory_exists():
                saw = f"{target.path} does not exist on {target.host}"
                fix = missing_directory_fix(target.name, target.user, target.host, str(target.path))
                return Check(name, FAIL, saw, fix)
            probes.check_writable()
        except BackupError as exc:
            return Check(
                name,
                FAIL,
                f"{target.path} is not writable: {exc}",
                f"on {target.host}: chown {target.user} {target.path} && chmod 700 {target.path}",
            )
        return Check(name, OK, f"{target.path} exists and is writable")

    def room(self, prefix: str, path: str, keep: int, free: int | None) -> Check:
        name = prefix + "free space"
        if free is None:
            return Check(name, WARN, f"unknown for {path} (no statvfs@openssh.com)")
        size = snapshot_size_estimate(self.config)
        needed = size * (keep + 1)
        if free < needed:
            return Check(
                name,
                FAIL,
                f"{human_size(free)} free in {path}; keep = {keep} needs ~{human_size(needed)}",
                "free space there, or lower keep for this target",
            )
        return Check(name, OK, f"{human_size(free)} free in {path} (needs ~{human_size(needed)})")

    def local_target(self, target: LocalTargetConfig) -> Check:
        name = f"{target.name}: directory"
        path = target.path
        if not path.is_dir():
            fix = f"mount it, or mkdir -m 700 {path}"
            return Check(name, FAIL, f"{path} does not exist (not mounted?)", fix)
        check = self.room(f"{target.name}: ", str(path), target.keep, shutil.disk_usage(path).free)
        return check if check.status != OK else Check(name, OK, f"{path}: {check.saw}")

    def any_target(self, target: TargetConfig) -> Check:
        """A backend without specific checks: it must at least list its copies."""
        name = f"{target.name}: reachable"
        try:
            with open_target(target, self.config.cluster_name) as opened:
                count = len(target_copies(opened, self.config.cluster_name))
        except BackupError as exc:
            return Check(name, FAIL, str(exc), f"check the [[targets]] entry {target.name!r}")
        return Check(name, OK, f"lists {plural(count, 'copy')} of ours")

    def s3_object_lock(self, target: S3TargetConfig) -> Check:
        """object_lock set: the bucket must have been made with Object Lock, or every put's
        PutObjectRetention fails (and nothing would protect the copies)."""
        name = f"{target.name}: object lock"
        try:
            enabled = s3_backend(target, self.config.cluster_name).object_lock_enabled()
        except BackupError as exc:
            return Check(name, FAIL, str(exc), f"check the [[targets]] entry {target.name!r}")
        if enabled:
            return Check(name, OK, f"bucket {target.bucket} has Object Lock enabled")
        return Check(
            name,
            FAIL,
            f"object_lock = {target.object_lock!r} but bucket {target.bucket} has no Object Lock",
            "Object Lock needs a versioned bucket created with it: `aws s3api create-bucket"
            f" --bucket NEW --object-lock-enabled-for-bucket`, or on {target.bucket}:"
            f" `aws s3api put-bucket-versioning --bucket {target.bucket} --versioning-configuration"
            f" Status=Enabled` then `aws s3api put-object-lock-configuration --bucket"
            f" {target.bucket} --object-lock-configuration ObjectLockEnabled=Enabled`",
        )

    # -- history ----------------------------------------------------------------------------

    def last_run(self) -> Check:
        state = read_state(self.config.state_dir)
        last, success = state.get("last_run"), state.get("last_success")
        interval = longest_gap(self._schedule())
        if not isinstance(last, dict):
            return Check("last run", FAIL, "no run recorded", "k3s-backup run")
        if last.get("outcome") != "success":
            return Check(
                "last run",
                FAIL,
                f"{shown_time(last.get('started'))} ended {last.get('outcome')}"
                f" (exit {last.get('exit_code')})",
                f"k3s-backup run, and read {self.config.log_file}",
            )
        assert isinstance(success, dict)
        age = self.env.now() - datetime.fromisoformat(str(success.get("started")))
        level = freshness(age, interval)
        saw = f"succeeded {human_age(age)} ({shown_time(success.get('started'))})"
        if level == OK:
            return Check("last run", OK, saw)
        return Check("last run", level, f"{saw}: late for a {interval} schedule", "k3s-backup run")

    def _schedule(self) -> Schedule:
        for installed in installed_schedules(self.paths):
            if installed.schedule is not None:
                return installed.schedule
        return parse_schedule(self.config.schedule)

    def log(self) -> Check:
        path = self.config.log_file
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[
                -LOG_TAIL_LINES:
            ]
        except FileNotFoundError:
            return Check(
                "log", WARN, f"{path} does not exist yet (no run logged)", "k3s-backup run"
            )
        starts = [i for i, line in enumerate(lines) if "] Starting etcd backup" in line]
        recent = lines[starts[-1] :] if starts else lines
        errors = [line for line in recent if "] ERROR: " in line or not line.startswith("[")]
        if not errors:
            return Check("log", OK, f"no errors in the last run's lines of {path}")
        shown = "\n".join(errors[-SHOWN_ERRORS:])
        return Check("log", WARN, f"errors in the last run in {path}:\n{shown}", f"tail -50 {path}")


def _print(checks: list[Check], env: Environment) -> None:
    for check in checks:
        first, *rest = check.saw.splitlines() or [""]
        env.stdout.write(f"{check.status:<4} {check.name}: {first}\n")
        for line in rest:
            env.stdout.write(f"       {line}\n")
        if check.fix and check.status != OK:
            env.stdout.write(f"       fix: {check.fix}\n")


def run_doctor(explicit: Path | None, env: Environment, root: Path, as_json: bool) -> ExitCode:
    paths = SystemPaths(root)
    path = config_file(explicit, env.environ, paths)
    checks: list[Check] = []
    try:
        config = load_config(path)
    except BackupError as exc:
        checks.append(Check("config", FAIL, str(exc), f"k3s-backup --config {path} config show"))
    else:
        checks.append(Check("config", OK, f"{path} is valid"))
        checks += Doctor(config, env, paths).all()
    failed = any(c.status == FAIL for c in checks)
    if as_json:
        document = {"ok": not failed, "checks": [asdict(c) for c in checks]}
        env.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _print(checks, env)
    return ExitCode.FAILED if failed else ExitCode.OK


@click.command("doctor", epilog=epilog("doctor"))
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@ROOT_OPTION
@pass_context
def command(ctx: Context, as_json: bool, root: Path) -> int:
    """Check everything a backup needs, each with what was seen and the command that fixes it."""
    return run_doctor(ctx.config_file, ctx.env, root, as_json)
