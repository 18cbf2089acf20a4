"""`k3s-backup setup`: the guide's one-time setup script as an idempotent command.

Six steps, each printed with its result: SSH key, host key, connection and remote directory,
configuration, schedule + logrotate rule, first backup. `--dry-run` prints every step and every
file and changes nothing; a second run with the same values changes nothing and says so. The
host key is trusted only on an interactive "yes" or an exactly matching --accept-host-key.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import paramiko
import tomli_w

from k3s_backup import config_file, scheduling
from k3s_backup.catalogue import recovery_key
from k3s_backup.catalogue.clusters import current_identity, new_chain_message, survey
from k3s_backup.catalogue.inventory import (
    LocalManifests,
    local_copies,
    read_target_manifest,
    target_copies,
)
from k3s_backup.cli_options import NEW_CLUSTER_OPTION, ROOT_OPTION, Context, epilog, pass_context
from k3s_backup.config import (
    PLACEHOLDER_HOST,
    Config,
    SshTargetConfig,
    TargetConfig,
    parse_config,
    redacted,
)
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ConfigError, ExitCode
from k3s_backup.plumbing.commands import CommandError, run_command
from k3s_backup.policy.identity import chain_conflict
from k3s_backup.policy.schedule import DEFAULT_SCHEDULE, ScheduleError, on_calendar
from k3s_backup.policy.schedule import parse as parse_schedule
from k3s_backup.report import human_size, shown_time
from k3s_backup.scheduling import Change, SystemPaths
from k3s_backup.ssh import nodekeys
from k3s_backup.ssh.errors import KeyRefusedError
from k3s_backup.ssh.hostkeys import (
    HostKeyChanged,
    fetch_host_key,
    fingerprint,
    host_key_file,
    known_key,
    shown,
    trust_host_key,
)
from k3s_backup.ssh.keyfile import KeyFileError
from k3s_backup.state import read_state
from k3s_backup.targets.base import Probes, probes_of
from k3s_backup.targets.factory import open_target

STEPS = 6
SERVICE_USER = "k3s-backup"  # host-setup's account on the backup host
DEFAULTS: dict[str, Any] = {
    "user": "root",
    "port": 22,
    "path": "/var/backups/k3s-etcd",
    "keep": 7,
    "connect_timeout": 15,
}


@dataclass
class SetupOptions:
    config_file: Path | None
    host: str | None
    user: str | None
    port: int | None
    remote_path: str | None
    identity_file: Path | None
    cluster_name: str | None
    keep_local: int | None
    keep_remote: int | None
    schedule: str | None
    scheduler: str | None
    drill_schedule: str | None  # cron syntax, or "off"
    accept_host_key: str | None
    yes: bool
    dry_run: bool
    root: Path
    new_cluster: bool = False  # --new-cluster: back up even beside another cluster's copies
    recovery_key: str | None = None  # --recovery-key FILE|-: the cluster's, from elsewhere
    mode: str | None = None  # --mode: append-only (new set-ups), prune or sftp


class SetupStop(Exception):
    """Setup cannot go on; the message says why and what to do."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Setup:
    options: SetupOptions
    env: Environment
    paths: SystemPaths = field(init=False)
    config_path: Path = field(init=False)
    changed: list[str] = field(default_factory=list)
    key_lines_shown: bool = False

    def __post_init__(self) -> None:
        self.paths = SystemPaths(self.options.root)
        self.config_path = scheduling.config_file(
            self.options.config_file, self.env.environ, self.paths
        )

    # -- output and questions ---------------------------------------------------------------

    def say(self, text: str) -> None:
        self.env.stdout.write(text + "\n")

    def step(self, number: int, title: str) -> None:
        self.say(f"[{number}/{STEPS}] {title}")

    def result(self, text: str) -> None:
        self.say(f"      {text}")

    def show_file(self, path: Path, content: str) -> None:
        self.result(f"--- {path} ---")
        for line in content.splitlines():
            self.result(f"| {line}")

    def ask(self, question: str) -> str | None:
        """A line from a terminal; None when stdin is not one or is closed (never guess)."""
        if not self.env.stdin_is_tty:
            return None
        self.env.stdout.write(question)
        self.env.stdout.flush()
        line = self.env.stdin.readline()
        return line.strip() if line else None  # "" is end of input (Ctrl-D), "\n" is Enter

    @property
    def dry(self) -> bool:
        return self.options.dry_run

    # -- values -----------------------------------------------------------------------------

    def existing_text(self) -> str | None:
        try:
            return self.config_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def existing(self) -> dict[str, Any]:
        text = self.existing_text()
        if text is None:
            return {}
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.config_path}: not valid TOML: {exc}") from None

    def desired(self, existing: dict[str, Any]) -> dict[str, Any]:
        """The configuration to write: existing values, replaced by what was given."""
        o = self.options
        data = dict(existing)
        targets = [dict(t) for t in data.get("targets", [])]
        index = next((i for i, t in enumerate(targets) if t.get("type") == "ssh"), None)
        old = targets[index] if index is not None else {}
        host = o.host or _configured_host(old) or self.ask_host()
        mode = self.target_mode(old)
        target = {
            "name": old.get("name") or re.sub(r"[^A-Za-z0-9._-]", "-", host),
            "type": "ssh",
            "host": host,
            "user": o.user or old.get("user", DEFAULTS["user"] if mode == "sftp" else SERVICE_USER),
            "port": o.port or old.get("port", DEFAULTS["port"]),
            "path": o.remote_path or old.get("path", DEFAULTS["path"]),
            "identity_file": str(
                o.identity_file or old.get("identity_file") or self.paths.ssh_dir / "id_ed25519"
            ),
            "known_hosts": old.get("known_hosts") or str(self.paths.ssh_dir / "known_hosts"),
            "connect_timeout": old.get("connect_timeout", DEFAULTS["connect_timeout"]),
            "keep": o.keep_remote or old.get("keep", DEFAULTS["keep"]),
        }
        if mode != "sftp" or self.options.mode:  # the opt-out, when chosen, said outright
            target["mode"] = mode
        target.update({k: v for k, v in old.items() if k not in target})
        if index is None:
            targets.append(target)
        else:
            targets[index] = target
        for key, given in (
            ("cluster_name", o.cluster_name),
            ("keep_local", o.keep_local),
            ("schedule", o.schedule),
            ("scheduler", o.scheduler),
            ("drill_schedule", o.drill_schedule),
        ):
            if given is not None:
                data[key] = given
        if data.get("drill_schedule") == "off":
            del data["drill_schedule"]
        data.setdefault("schedule", DEFAULT_SCHEDULE)
        data.setdefault("scheduler", "cron")
        if not self.paths.is_system_root:  # our own files land under the root too
            data.setdefault("log_file", str(self.paths.under("/var/log/k3s-backup.log")))
            data.setdefault("state_dir", str(self.paths.under("/var/lib/k3s-backup")))
        data["targets"] = targets
        return data

    def target_mode(self, old: dict[str, Any]) -> str:
        """--mode, else the target's own; a target set up before modes existed (no key)
        keeps the guide's SFTP (doctor warns), a new one gets the append-only service."""
        if self.options.mode is not None:
            return self.options.mode
        configured = bool(_configured_host(old))  # the template's placeholder is no set-up
        return str(old.get("mode", "sftp" if configured else "append-only"))

    def ask_host(self) -> str:
        answer = self.ask("Backup host (name or address): ")
        if not answer:
            raise SetupStop(
                "no backup host: pass --host (stdin is not a terminal to ask)", ExitCode.USAGE
            )
        return answer

    # -- the steps --------------------------------------------------------------------------

    def run(self) -> ExitCode:
        if self.dry:
            self.say("Dry run: nothing is written, created, installed or run.")
        data = self.desired(self.existing())
        config = parse_config(data, self.config_path)
        if config.scheduler == "systemd":
            try:  # refuse before changing anything what a timer cannot express
                on_calendar(parse_schedule(config.schedule))
                if config.drill_schedule:
                    on_calendar(parse_schedule(config.drill_schedule))
            except ScheduleError as exc:
                raise SetupStop(str(exc), ExitCode.USAGE) from None
        target = next(t for t in config.targets if isinstance(t, SshTargetConfig))
        self.confirm(config, target)
        self.ssh_key(target)
        self.host_key(target)
        self.remote_dir(config, target)
        self.write_config(data)
        self.ensure_recovery_key(config)
        self.install_schedule(config)
        code = self.first_backup(config)
        if not self.changed and not self.dry:
            self.say("Nothing changed: already set up with these values.")
        elif not self.dry:
            self.keep_safe(config, target)
        return code

    def confirm(self, config: Config, target: SshTargetConfig) -> None:
        if self.options.yes or self.dry or not self.env.stdin_is_tty:
            return
        answer = self.ask(
            f"Back up {config.cluster_name} to {target.user}@{target.host}:{target.path}"
            f" ({config.schedule}, {config.scheduler})? [y/N] "
        )
        if (answer or "").lower() not in ("y", "yes"):
            raise SetupStop("not confirmed; nothing changed")

    def ssh_key(self, target: SshTargetConfig) -> None:
        self.step(1, f"SSH key {target.identity_file}")
        key = target.identity_file
        if key.exists():
            try:
                key_fingerprint = nodekeys.key_fingerprint(key)
            except KeyFileError as exc:
                raise SetupStop(str(exc)) from None
            problem = nodekeys.unsafe_permissions(key)
            if problem:
                raise SetupStop(f"{key}: {problem}; fix it with `chmod 600 {key}`")
            self.result(f"exists ({key_fingerprint}), mode 0600: unchanged")
            return
        if self.dry:
            self.result(f"would generate an ed25519 key there (0600) and {key}.pub")
            return
        nodekeys.generate_key(key, nodekeys.key_comment())
        self.changed.append("key")
        self.result(f"generated ed25519 key ({nodekeys.key_fingerprint(key)}), mode 0600")
        self.authorized_keys_help(target)

    def authorized_keys_help(self, target: SshTargetConfig) -> None:
        if self.key_lines_shown:
            self.result("(the lines to add are shown in step 1)")
            return
        self.key_lines_shown = True
        if target.mode != "sftp":
            self.host_commands_help(target)
            return
        public = nodekeys.public_line(target.identity_file)
        source = nodekeys.local_address_towards(target.host, target.port)
        self.result(
            f"Add ONE of these lines to ~{target.user}/.ssh/authorized_keys on {target.host}:"
        )
        self.result(f"  {public}")
        self.result("or, restricted (no forwarding, PTY or agent; only from this node):")
        self.result(f"  {nodekeys.restricted_line(public, source)}")

    def host_commands_help(self, target: SshTargetConfig) -> None:
        """The two commands that set the backup host up for this node's key, filled in."""
        public = nodekeys.public_line(target.identity_file)
        source = nodekeys.local_address_towards(target.host, target.port)
        config = parse_config(self.desired(self.existing()), self.config_path)
        self.result(f"On the backup host {target.host}, as root (README: The backup host):")
        for line in host_commands(config.cluster_name, target, public, source):
            self.result(f"  {line}")

    def host_key(self, target: SshTargetConfig) -> None:
        self.step(2, f"Host key of {target.host}:{target.port}")
        known = known_key(target.known_hosts, target.host, target.port)
        types = [k.get_name() for k in known] or None
        try:
            offered = fetch_host_key(target.host, target.port, float(target.connect_timeout), types)
        except BackupError as exc:
            raise SetupStop(str(exc)) from None
        if known:
            if any(k == offered for k in known):
                self.result(f"{shown(offered)} already in {target.known_hosts}: unchanged")
                return
            changed = HostKeyChanged(target.host, target.port, target.known_hosts, known, offered)
            raise SetupStop(str(changed))
        self.result(f"the host offers {shown(offered)}; it is not in {target.known_hosts}")
        self.result(f"check it ON THE BACKUP HOST: ssh-keygen -lf {host_key_file(offered)}")
        self.decide_trust(target, offered)

    def decide_trust(self, target: SshTargetConfig, offered: paramiko.PKey) -> None:
        wanted = fingerprint(offered)
        given = self.options.accept_host_key
        if given is not None:
            if given != wanted:
                raise SetupStop(
                    f"--accept-host-key {given} does not match the key the host offers"
                    f" ({wanted}); not trusting it"
                )
        elif self.dry:
            self.result("would ask you to confirm it (or take --accept-host-key)")
            return
        else:
            answer = self.ask(f"Trust {wanted} for {target.host}? Type yes to trust it: ")
            if answer is None:
                raise SetupStop(
                    f"the host key {wanted} needs your confirmation and stdin is not a terminal;"
                    " after checking it on the backup host, run:\n"
                    f"  {self.rerun_command(wanted)}",
                    ExitCode.USAGE,
                )
            if answer != "yes":
                raise SetupStop(f"host key {wanted} not trusted; nothing trusted or connected")
        if self.dry:
            self.result(f"would add it to {target.known_hosts} (0600)")
            return
        trust_host_key(target.known_hosts, target.host, target.port, offered)
        self.changed.append("known_hosts")
        self.result(f"trusted: added to {target.known_hosts}")

    def rerun_command(self, host_fingerprint: str) -> str:
        o = self.options
        words = ["k3s-backup"]
        if o.config_file is not None:
            words += ["--config", str(o.config_file)]
        words.append("setup")
        for flag, value in (
            ("--host", o.host),
            ("--user", o.user),
            ("--port", o.port),
            ("--path", o.remote_path),
            ("--identity-file", o.identity_file),
            ("--cluster-name", o.cluster_name),
            ("--keep-local", o.keep_local),
            ("--keep-remote", o.keep_remote),
            ("--schedule", o.schedule),
            ("--scheduler", o.scheduler),
        ):
            if value is not None:
                words += [flag, str(value)]
        if not self.paths.is_system_root:
            words += ["--root", str(o.root)]
        return shlex.join([*words, "--accept-host-key", host_fingerprint])

    def remote_dir(self, config: Config, target: SshTargetConfig) -> None:
        self.step(3, f"Connection to {target.user}@{target.host}:{target.port}, {target.path}")
        if target.mode != "sftp":
            self.service_dir(config, target)
            return
        if self.dry:
            self.result(
                f"would connect, create {target.path} (0700) if missing, check it is writable"
                " and has room"
            )
            return
        with open_target(target, config.cluster_name) as opened:
            probes = probes_of(opened)
            self.connect(probes, target)
            try:
                existed = probes.directory_exists()
                probes.ensure_directory()
                probes.check_writable()
                free = probes.free_space()
            except BackupError as exc:
                raise SetupStop(str(exc)) from None
        if not existed:
            self.changed.append("remote dir")
        self.result(f"connected; {target.path} {'exists' if existed else 'created (0700)'}")
        self.check_room(config, target, free)

    def service_dir(self, config: Config, target: SshTargetConfig) -> None:
        """The service answers for the key (host-setup made the directory): until it does,
        show the host's two commands and (on a terminal) wait for them."""
        if self.dry:
            self.result(f"would connect to k3s-backup serve ({target.mode}) and list {target.path}")
            return
        while True:
            try:
                with open_target(target, config.cluster_name) as service:
                    count = len(target_copies(service, config.cluster_name))
                break
            except BackupError as exc:
                self.result(f"not ready: {exc}")
                self.authorized_keys_help(target)
                if self.ask("Press Enter once both commands ran there (Ctrl-D to stop): ") is None:
                    raise SetupStop(
                        f"{target.host} does not run k3s-backup serve for this key yet; run the"
                        " commands above there, then run setup again"
                    ) from None
        self.result(f"connected to k3s-backup serve ({target.mode}); {count} copies of ours there")

    def connect(self, probes: Probes, target: SshTargetConfig) -> None:
        """Connect; while the key is refused, show the line to add and (on a terminal) retry."""
        while True:
            try:
                probes.connect()
                return
            except KeyRefusedError as exc:
                self.result(f"refused: {exc}")
                self.authorized_keys_help(target)
                if self.ask("Press Enter once the line is added (Ctrl-D to stop): ") is None:
                    raise SetupStop(
                        f"{target.host} does not accept the key yet; add the line above, then"
                        " run setup again"
                    ) from None
            except BackupError as exc:
                raise SetupStop(str(exc)) from None

    def check_room(self, config: Config, target: SshTargetConfig, free: int | None) -> None:
        size = snapshot_size_estimate(config)
        needed = size * (target.keep + 1)
        if free is None:
            self.result("writable; free space unknown (the server lacks statvfs@openssh.com)")
        elif free < needed:
            raise SetupStop(
                f"{target.path} on {target.host} has {human_size(free)} free; keep = {target.keep}"
                f" needs about {human_size(needed)} ({target.keep + 1} x {human_size(size)})"
            )
        else:
            self.result(f"writable; {human_size(free)} free (needs ~{human_size(needed)})")

    def write_config(self, data: dict[str, Any]) -> None:
        self.step(4, f"Configuration {self.config_path}")
        if self.existing() == data:  # the same values: the file is left as it is, byte for byte
            self.result("unchanged")
            return
        content = config_file.updated(self.existing_text(), data)  # comments and layout kept
        change = Change.UPDATED if self.config_path.exists() else Change.CREATED
        if self.dry:
            self.result(f"would be {change.value} (0600):")
            self.show_file(self.config_path, tomli_w.dumps(redacted(data)))  # no secret URL
            return
        self.config_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scheduling.write_file(self.config_path, content, 0o600)
        self.changed.append("config")
        self.result(f"{change.value} (0600)")

    def schedule_files(self, config: Config) -> tuple[list[tuple[Path, str]], list[Path]]:
        """The files the configured scheduler needs, and those of ours to remove."""
        schedule = parse_schedule(config.schedule)
        drill = parse_schedule(config.drill_schedule) if config.drill_schedule else None
        program, log, paths = scheduling.program_path(), config.log_file, self.paths
        drill_units = [paths.drill_service, paths.drill_timer]
        if config.scheduler == "cron":
            cron = scheduling.cron_file(schedule, program, self.config_path, log, drill)
            return [(paths.cron, cron)], [paths.timer, paths.service, *drill_units]
        files = [
            (paths.service, scheduling.service_unit(program, self.config_path, log)),
            (paths.timer, scheduling.timer_unit(schedule)),
        ]
        if drill is None:
            return files, [paths.cron, *drill_units]
        unit = scheduling.service_unit(program, self.config_path, log, scheduling.DRILL)
        files += [
            (paths.drill_service, unit),
            (paths.drill_timer, scheduling.timer_unit(drill, scheduling.DRILL)),
        ]
        return files, [paths.cron]

    def install_schedule(self, config: Config) -> None:
        schedule = parse_schedule(config.schedule)
        drill = f", drill {config.drill_schedule!r}" if config.drill_schedule else ""
        self.step(
            5, f"Schedule {schedule.expression!r}{drill} ({config.scheduler}) and logrotate rule"
        )
        files, stale = self.schedule_files(config)
        files.append((self.paths.logrotate, scheduling.logrotate_rule(config.log_file)))
        units_changed = False
        for path in stale:
            if scheduling.planned_removal(path) is Change.REMOVED:
                units_changed |= path.suffix in (".service", ".timer")
                self.apply_removal(path)
        for path, content in files:
            if self.install_file(path, content) and path.suffix in (".service", ".timer"):
                units_changed = True
        if config.scheduler == "systemd" or units_changed:
            timers = ["k3s-backup.timer"] + (["k3s-backup-drill.timer"] if drill else [])
            self.systemctl(timers if config.scheduler == "systemd" else [], units_changed)

    def install_file(self, path: Path, content: str) -> bool:
        change = scheduling.planned_change(path, content, 0o644)
        if change is Change.UNCHANGED:
            self.result(f"{path}: unchanged")
            return False
        if self.dry:
            self.result(f"{path}: would be {change.value} (0644):")
            self.show_file(path, content)
            return True
        scheduling.write_file(path, content, 0o644)
        self.changed.append(str(path))
        self.result(f"{path}: {change.value} (0644)")
        return True

    def apply_removal(self, path: Path) -> None:
        if self.dry:
            self.result(f"{path}: would be removed (not in this schedule)")
            return
        path.unlink()
        self.changed.append(str(path))
        self.result(f"{path}: removed (not in this schedule)")

    def systemctl(self, timers: list[str], reload: bool) -> None:
        commands = [["systemctl", "daemon-reload"]] if reload else []
        commands += [["systemctl", "enable", "--now", timer] for timer in timers]
        if not commands:
            return
        if self.dry or not self.paths.is_system_root:
            why = "dry run" if self.dry else f"installing under --root {self.paths.root}"
            for command in commands:
                self.result(f"would run `{shlex.join(command)}` ({why}: skipped)")
            return
        for command in commands:
            try:
                done = run_command(command, timeout=None, env=self.env.environ)
            except CommandError as exc:
                raise SetupStop(str(exc)) from None
            if done.returncode != 0:
                raise SetupStop(f"`{shlex.join(command)}` failed: {done.stderr.strip()}")
            self.result(f"ran `{shlex.join(command)}`")

    def first_backup(self, config: Config) -> ExitCode:
        self.step(6, "First backup")
        last = read_state(config.state_dir).get("last_success")
        if isinstance(last, dict):
            self.result(
                f"skipped: a backup already succeeded at {shown_time(last.get('started'))}"
                " (`k3s-backup run` makes another now)"
            )
            return ExitCode.OK
        if self.dry:
            self.result("would run `k3s-backup run` and show its summary")
            return ExitCode.OK
        held = self.copies_of_another_cluster(config)
        if held is not None:
            for line in held.splitlines():
                self.result(line)
            return ExitCode.OK
        from k3s_backup.backup.locked_run import run_backup

        self.changed.append("first backup")
        code = run_backup(config, self.env, new_cluster=self.options.new_cluster)
        self.result(f"first backup: exit {int(code)} ({code.name.lower()})")
        return code

    def copies_of_another_cluster(self, config: Config) -> str | None:
        """Why no first backup is taken, when the locations hold copies of this cluster name
        from another cluster and none from this node's (a node replacing a lost server)."""
        if self.options.new_cluster:
            return None
        manifests = LocalManifests(config.state_dir, config.snapshot_dir, "k3s")
        current = current_identity(config, manifests)
        if current is None:  # unreadable here: the run itself checks its snapshot
            return None
        held = survey(config, manifests, self.result)
        conflicts = {
            location: copies
            for location, copies in held.items()
            if chain_conflict(current, [c.identity for c in copies])
        }
        if not conflicts:
            return None
        return "not taken: " + new_chain_message(
            config.cluster_name, current, conflicts, flag="setup"
        ).removeprefix("no backup taken: ")

    def ensure_recovery_key(self, config: Config) -> None:
        """The cluster's recovery key in place: the one given, the one already here, or (on
        the first server of a cluster, where no authenticated copy exists yet) a new one,
        shown once. Never a new one where copies made with the cluster's key are: a second
        server or a replacement node takes the cluster's key (--recovery-key)."""
        path = config.recovery_key_file
        if self.options.recovery_key is not None:
            key = recovery_key.read_given(self.options.recovery_key, self.env)
            if self.dry:
                self.result(f"recovery key: would be saved in {path} (0600)")
                return
            existed = recovery_key.load(path) == key
            recovery_key.save(path, key)
            self.result(f"recovery key {path}: {'unchanged' if existed else 'saved (0600)'}")
            if not existed:
                self.changed.append("recovery key")
            return
        if recovery_key.load(path) is not None:
            self.result(f"recovery key {path}: unchanged")
            return
        signed = [t.name for t in config.targets if _holds_signed_copies(config, t)]
        if signed:
            raise SetupStop(
                f"{', '.join(signed)} holds copies of {config.cluster_name} authenticated with"
                " the cluster's recovery key, and this node has none: give it with"
                " `--recovery-key FILE` (or `--recovery-key -` to type it), or keep this"
                " cluster's copies apart with another --cluster-name",
                ExitCode.USAGE,
            )
        if self.dry:
            self.result(f"recovery key: would be created in {path} (0600) and shown once")
            return
        key = recovery_key.decode(recovery_key.generate())
        recovery_key.save(path, key)
        self.changed.append("recovery key")
        recovery_key.show_once(self.env, key, path)

    def keep_safe(self, config: Config, target: SshTargetConfig) -> None:
        """Once, on the set-up that changed something: what the day the disk dies needs."""
        host_key = target.known_hosts
        self.say(
            "Keep these OFF this node, for the day its disk dies (a password manager, paper):\n"
            f"  backup host: {target.user}@{target.host}:{target.port}, directory"
            f" {target.path}\n"
            f"  its host key fingerprint (in {host_key}): `ssh-keygen -lf {host_key}`\n"
            f"  the cluster name: {config.cluster_name}\n"
            "  the cluster's recovery key (`k3s-backup recovery-key show`; in"
            f" {config.recovery_key_file})\n"
            "  the age identity (private key), if a target encrypts copies\n"
            "On a new node: install k3s-backup, run `k3s-backup setup --host ...` with the same"
            " values and `--recovery-key FILE` (it finds the copies and takes no backup), then"
            " `k3s-backup restore`."
            " The server token comes back with the copy's restore bundle."
        )


def _configured_host(target: dict[str, Any]) -> str | None:
    """The target's host, unless it is the template's placeholder (or absent)."""
    host = target.get("host")
    return host if isinstance(host, str) and host and host != PLACEHOLDER_HOST else None


def _holds_signed_copies(config: Config, target_config: TargetConfig) -> bool:
    """Whether a target holds a copy of this cluster name whose manifest carries a MAC (made
    with a recovery key): one connection, manifests read until one does."""
    try:
        with open_target(target_config, config.cluster_name) as target:
            return any(
                read_target_manifest(target, copy.name.filename).mac
                for copy in target_copies(target, config.cluster_name)
                if copy.has_manifest
            )
    except BackupError:
        return False


def host_commands(
    cluster: str, target: SshTargetConfig, public: str, source: str | None
) -> list[str]:
    """(1) install k3s-backup on the backup host, (2) its host-setup for this node's key."""
    words = ["k3s-backup", "host-setup", "--dir", str(target.path), "--key", public]
    words += ["--from", source or "ADDRESS-OF-THIS-NODE", "--cluster", cluster]
    words += ["--mode", target.mode, "--user", target.user, "--keep", str(target.keep)]
    for flag, count in (
        ("--keep-daily", target.keep_daily),
        ("--keep-weekly", target.keep_weekly),
        ("--keep-monthly", target.keep_monthly),
    ):
        words += [flag, str(count)] if count else []
    return [
        "1. install k3s-backup as on this node: git clone <this repository> k3s-backup &&"
        " cd k3s-backup && ./install.sh",
        f"2. {shlex.join(words)}",
    ]


def snapshot_size_estimate(config: Config) -> int:
    """The size of one snapshot: our newest local one, else the live database file."""
    copies = local_copies(config.snapshot_dir, config.cluster_name)
    if copies:
        return copies[-1].size
    db = config.k3s.data_dir / "server" / "db"
    for candidate in (db / "etcd" / "member" / "snap" / "db", db / "state.db"):
        try:
            return candidate.stat().st_size
        except OSError:
            continue
    return 0


def run_setup(options: SetupOptions, env: Environment) -> ExitCode:
    setup = Setup(options, env)
    try:
        return setup.run()
    except SetupStop as stop:
        env.stderr.write(f"error: {stop}\n")
        if setup.changed:
            env.stderr.write(f"(done before stopping: {', '.join(setup.changed)})\n")
        return stop.code
    except OSError as exc:
        env.stderr.write(f"error: {exc.filename or ''}: {exc.strerror or exc}\n")
        return ExitCode.FAILED


@click.command("setup", epilog=epilog("setup"))
@click.option("--host", help="The backup host (name or address).")
@click.option(
    "--user", help="SSH user on the backup host [default: k3s-backup; root for --mode sftp]."
)
@click.option("--port", type=click.IntRange(1, 65535), help="SSH port [default: 22].")
@click.option("--path", "remote_path", help="Directory on the backup host.")
@click.option("--identity-file", type=click.Path(path_type=Path), help="SSH private key.")
@click.option("--cluster-name", help="Prefix of our snapshot names.")
@click.option("--keep-local", type=click.IntRange(min=1), help="Snapshots kept on this node.")
@click.option("--keep-remote", type=click.IntRange(min=1), help="Copies kept on the host.")
@click.option("--schedule", help='Cron schedule [default: "0 2 * * *"].')
@click.option("--scheduler", type=click.Choice(["cron", "systemd"]), help="[default: cron]")
@click.option(
    "--drill-schedule",
    metavar="CRON|off",
    help='Also rehearse a restore (`k3s-backup drill`) on this schedule, e.g. "0 4 * * 0".',
)
@click.option(
    "--accept-host-key",
    metavar="SHA256:...",
    help="Trust the backup host's key if its fingerprint is exactly this.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask to confirm (never trusts a host key).")
@click.option("--dry-run", is_flag=True, help="Print every step and file; change nothing.")
@NEW_CLUSTER_OPTION
@click.option(
    "--recovery-key",
    metavar="FILE|-",
    help="The cluster's recovery key (a second server, a replacement node); '-' reads it from"
    " stdin. Without it, setup creates one where no copy needs it.",
)
@click.option(
    "--mode",
    type=click.Choice(["append-only", "prune", "sftp"]),
    help="How the backup host is used [default: append-only for a new target]: append-only,"
    " its k3s-backup service, and this node can delete nothing there; prune, the service, and"
    " this node rotates within the host's retention; sftp, the guide's plain SFTP (the key is"
    " then a shell there).",
)
@ROOT_OPTION
@pass_context
def command(ctx: Context, /, **options: Any) -> int:
    """Set up backups: key, host key, remote dir, config, schedule, first backup."""
    return run_setup(SetupOptions(config_file=ctx.config_file, **options), ctx.env)
