"""Setup's six steps, each printed with its result: SSH key, host key, connection and remote
directory, configuration (and recovery key), schedule + logrotate rule, first backup. Each
step probes first, then hands its changes to the one applier (console.apply): `--dry-run`
says every change and every file as "would ...", a real run makes them; a second run with the
same values has none to make and says so. The host key is trusted only on an interactive
"yes" or an exactly matching --accept-host-key."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import tomli_w

from k3s_backup import config_file, scheduling
from k3s_backup.config import Config, SshTargetConfig, parse_config, redacted
from k3s_backup.errors import BackupError, ConfigError, ExitCode
from k3s_backup.plumbing.plan import Call, write_file
from k3s_backup.policy.schedule import ScheduleError, on_calendar
from k3s_backup.policy.schedule import parse as parse_schedule
from k3s_backup.scheduling import Change, SystemPaths
from k3s_backup.setup.console import Console
from k3s_backup.setup.first_backup import ensure_recovery_key, first_backup, keep_safe
from k3s_backup.setup.remote import Remote
from k3s_backup.setup.schedule import schedule_plan
from k3s_backup.setup.values import SetupStop, desired, rerun_command
from k3s_backup.ssh import nodekeys
from k3s_backup.ssh.hostkeys import (
    check_host_key,
    fingerprint,
    host_key_file,
    shown,
    trust_host_key,
)
from k3s_backup.ssh.keyfile import KeyFileError


@dataclass
class Setup(Console):
    paths: SystemPaths = field(init=False)
    config_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.paths = SystemPaths(self.options.root)
        self.config_path = scheduling.config_file(
            self.options.config_file, self.env.environ, self.paths
        )

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

    def ask_host(self) -> str:
        answer = self.ask("Backup host (name or address): ")
        if not answer:
            raise SetupStop(
                "no backup host: pass --host (stdin is not a terminal to ask)", ExitCode.USAGE
            )
        return answer

    # -- the steps --------------------------------------------------------------------------

    def run(self) -> ExitCode:
        if self.options.dry_run:
            self.say("Dry run: nothing is written, created, installed or run.")
        data = desired(self.options, self.paths, self.existing(), self.ask_host)
        config = parse_config(data, self.config_path)
        if config.scheduler == "systemd":
            try:  # refuse before changing anything what a timer cannot express
                on_calendar(parse_schedule(config.schedule))
                if config.drill_schedule:
                    on_calendar(parse_schedule(config.drill_schedule))
            except ScheduleError as exc:
                raise SetupStop(str(exc), ExitCode.USAGE) from None
        target = next(t for t in config.targets if isinstance(t, SshTargetConfig))
        remote = Remote(self, config, target)
        self.confirm(config, target)
        self.ssh_key(target, remote)
        self.host_key(target)
        remote.check()
        self.write_config(data)
        ensure_recovery_key(self, config)
        self.install_schedule(config)
        code = first_backup(self, config)
        if self.changed:
            keep_safe(self, config, target)
        elif not self.options.dry_run:
            self.say("Nothing changed: already set up with these values.")
        return code

    def confirm(self, config: Config, target: SshTargetConfig) -> None:
        """On a terminal, before anything changes; a dry run changes nothing, so asks nothing."""
        if self.options.yes or self.options.dry_run or not self.env.stdin_is_tty:
            return
        answer = self.ask(
            f"Back up {config.cluster_name} to {target.user}@{target.host}:{target.path}"
            f" ({config.schedule}, {config.scheduler})? [y/N] "
        )
        if (answer or "").lower() not in ("y", "yes"):
            raise SetupStop("not confirmed; nothing changed")

    def ssh_key(self, target: SshTargetConfig, remote: Remote) -> None:
        self.step(1, f"SSH key {target.identity_file}")
        key = target.identity_file
        if key.exists():
            try:
                key_fingerprint = nodekeys.usable_key(key)
            except KeyFileError as exc:
                raise SetupStop(str(exc)) from None
            self.result(f"exists ({key_fingerprint}), mode 0600: unchanged")
            return

        def generate() -> str:
            nodekeys.generate_key(key, nodekeys.key_comment())
            self.changed.append("key")
            return f"generated ed25519 key ({nodekeys.key_fingerprint(key)}), mode 0600"

        line = f"generate an ed25519 key there (0600) and {key}.pub"
        if self.apply(Call("key", str(key), line, action=generate)):
            remote.key_help()

    def host_key(self, target: SshTargetConfig) -> None:
        self.step(2, f"Host key of {target.host}:{target.port}")
        try:
            offered, known = check_host_key(
                target.host, target.port, target.known_hosts, float(target.connect_timeout)
            )
        except BackupError as exc:  # no handshake, or the key CHANGED
            raise SetupStop(str(exc)) from None
        if known:
            self.result(f"{shown(offered)} already in {target.known_hosts}: unchanged")
            return
        self.result(f"the host offers {shown(offered)}; it is not in {target.known_hosts}")
        self.result(f"check it ON THE BACKUP HOST: ssh-keygen -lf {host_key_file(offered)}")
        self.decide_trust(target, offered)

    def decide_trust(self, target: SshTargetConfig, offered: paramiko.PKey) -> None:
        wanted = fingerprint(offered)
        given = self.options.accept_host_key
        if given is not None and given != wanted:
            raise SetupStop(
                f"--accept-host-key {given} does not match the key the host offers"
                f" ({wanted}); not trusting it"
            )

        def trust() -> None:
            if given is None:
                self.confirm_host_key(target, wanted)
            trust_host_key(target.known_hosts, target.host, target.port, offered)
            self.changed.append("known_hosts")

        line = f"add it to {target.known_hosts} (0600)"
        if given is None:
            line = f"ask you to confirm it (or take --accept-host-key), then {line}"
        done = f"trusted: added to {target.known_hosts}"
        self.apply(Call("known_hosts", str(target.known_hosts), line, done, action=trust))

    def confirm_host_key(self, target: SshTargetConfig, wanted: str) -> None:
        answer = self.ask(f"Trust {wanted} for {target.host}? Type yes to trust it: ")
        if answer is None:
            raise SetupStop(
                f"the host key {wanted} needs your confirmation and stdin is not a terminal;"
                " after checking it on the backup host, run:\n"
                f"  {rerun_command(self.options, self.paths, wanted)}",
                ExitCode.USAGE,
            )
        if answer != "yes":
            raise SetupStop(f"host key {wanted} not trusted; nothing trusted or connected")

    def write_config(self, data: dict[str, Any]) -> None:
        self.step(4, f"Configuration {self.config_path}")
        if self.existing() == data:  # the same values: the file is left as it is, byte for byte
            self.result("unchanged")
            return
        content = config_file.updated(self.existing_text(), data)  # comments and layout kept
        change = Change.UPDATED if self.config_path.exists() else Change.CREATED
        verb = "update" if change is Change.UPDATED else "create"
        shown_text = tomli_w.dumps(redacted(data))  # no secret URL on the screen
        line, done = f"{verb} it (0600):", f"{change.value} (0600)"
        self.apply(write_file(self.config_path, content, 0o600, line, done, shown_text, 0o700))

    def install_schedule(self, config: Config) -> None:
        schedule = parse_schedule(config.schedule)
        drill = f", drill {config.drill_schedule!r}" if config.drill_schedule else ""
        self.step(
            5, f"Schedule {schedule.expression!r}{drill} ({config.scheduler}) and logrotate rule"
        )
        self.apply(*schedule_plan(config, self.paths, self.config_path).steps)
