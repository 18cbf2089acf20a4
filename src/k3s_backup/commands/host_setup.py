"""`k3s-backup host-setup`, run as root on the backup host: an unprivileged account whose only
use of the node's key is `k3s-backup serve` (a forced command), the backup directory it owns,
and, for append-only keys, rotation on the host's own schedule (a systemd timer, else cron).

The account's home and ~/.ssh belong to root: even a flaw in the service could not let the
account rewrite its own authorized_keys. Every argument reaches useradd as a list element and
every line written is built from validated values, never from a shell.
"""

from __future__ import annotations

import base64
import binascii
import os
import pwd
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from k3s_backup import host_schedule as schedule
from k3s_backup.cli_options import ROOT_OPTION, Context, pass_context
from k3s_backup.environment import Environment
from k3s_backup.errors import ConfigError, ExitCode
from k3s_backup.plumbing.plan import StepFailed, run_step
from k3s_backup.policy import naming
from k3s_backup.scheduling import SystemPaths, is_ours, plain_path, program_path, write_file
from k3s_backup.service.protocol import APPEND_ONLY, PRUNE, READ_ONLY

KEY_TYPES = frozenset(
    {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"}
    | {"ssh-rsa", "sk-ssh-ed25519@openssh.com"}
)
_FROM = re.compile(r"[0-9A-Za-z.:*?/!-]+(,[0-9A-Za-z.:*?/!-]+)*")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,30}")
PROTECT_DAYS = 7  # append-only's default window: a week to notice a stolen key's burst
SYSTEMCTL_TIMEOUT = 120.0  # seconds for `systemctl daemon-reload` and `enable --now`


@dataclass(frozen=True)
class HostSetupOptions:
    directory: Path
    key: str
    from_hosts: str
    cluster: str
    mode: str  # protocol.APPEND_ONLY, PRUNE or READ_ONLY
    user: str = "k3s-backup"
    home: Path | None = None
    keep: int = 7
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    protect_days: int | None = None  # the host deletes no copy it received more recently
    max_per_day: int = 48  # new copies the service accepts per 24 hours
    root: Path = Path("/")  # where /etc/cron.d is (tests); the account is always real
    program: Path | None = None  # the k3s-backup the forced command runs [default: this one]


def parse_key(line: str) -> tuple[str, str]:
    """(type, base64) of an OpenSSH public key line; ConfigError naming what is wrong."""
    fields = line.strip().split()
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        raise ConfigError(
            f"--key must be the node's public key line (`ssh-ed25519 AAAA... comment`, as setup"
            f" prints it), got {line[:40]!r}"
        )
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        raise ConfigError("--key: the key's second field is not base64") from None
    if not blob.startswith(len(fields[0]).to_bytes(4, "big") + fields[0].encode()):
        raise ConfigError(f"--key: the key's data is not a {fields[0]} key")
    return fields[0], fields[1]


def check(options: HostSetupOptions) -> None:
    if not options.directory.is_absolute():
        raise ConfigError(f"--dir must be an absolute path, got {options.directory}")
    plain_path(options.directory, "--dir")
    if not _FROM.fullmatch(options.from_hosts):
        raise ConfigError(
            f"--from {options.from_hosts!r}: addresses or patterns (10.0.0.5, 10.0.0.0/24,"
            " node*.lan), comma-separated, without spaces or quotes"
        )
    problem = naming.cluster_name_problem(options.cluster)
    if problem:
        raise ConfigError(f"--cluster {options.cluster!r} {problem}")
    if not _USER.fullmatch(options.user) or options.user == "root":
        raise ConfigError(f"--user {options.user!r}: a new, unprivileged account name")
    if options.keep < 1:
        raise ConfigError("--keep must be at least 1: rotation never deletes the newest copy")


def home_of(options: HostSetupOptions) -> Path:
    return options.home or Path("/var/lib") / options.user


def protect_days(options: HostSetupOptions) -> int:
    """--protect-days, else 7 for the host's own rotation (append-only); 0 where the node
    rotates (prune): a window there would refuse the node's every rotation."""
    if options.protect_days is not None:
        return options.protect_days
    return PROTECT_DAYS if options.mode == APPEND_ONLY else 0


def retention_args(options: HostSetupOptions) -> str:
    """The host's rotation rules, as serve and serve-prune take them."""
    args = f"--keep {options.keep}"
    for flag, count in (
        ("--keep-daily", options.keep_daily),
        ("--keep-weekly", options.keep_weekly),
        ("--keep-monthly", options.keep_monthly),
        ("--protect-days", protect_days(options)),
    ):
        args += f" {flag} {count}" if count else ""
    return args


def serve_command(options: HostSetupOptions, program: Path) -> str:
    base = (
        f"{plain_path(program, 'program')} serve --root {options.directory}"
        f" --cluster {options.cluster}"
    )
    if options.mode == READ_ONLY:
        return base + " --read-only"
    limit = f" --max-per-day {options.max_per_day}" if options.max_per_day else ""
    if options.mode == APPEND_ONLY:
        return base + " --append-only" + limit
    return f"{base} {retention_args(options)}{limit}"


def key_line(options: HostSetupOptions, program: Path) -> str:
    key_type, blob = parse_key(options.key)
    command = serve_command(options, program)
    comment = f"k3s-backup:{options.cluster}:{options.mode}"
    return f'command="{command}",restrict,from="{options.from_hosts}" {key_type} {blob} {comment}'


def merged_keys(existing: str, line: str) -> str:
    """authorized_keys with `line`, replacing the line of the same key (a re-run, a mode
    changed), keeping every other key."""
    blob = line.split()[-2]
    kept = [old for old in existing.splitlines() if old.strip() and blob not in old.split()]
    return "\n".join([*kept, line]) + "\n"


def prune_job(options: HostSetupOptions, program: Path) -> schedule.PruneJob:
    return schedule.PruneJob(
        program, options.directory, options.cluster, options.user, retention_args(options)
    )


def install_rotation(options: HostSetupOptions, program: Path, env: Environment) -> str:
    """The daily serve-prune (systemd timer, enabled, where systemd runs, else cron); what
    was installed, for the operator."""
    paths = SystemPaths(options.root)
    job = prune_job(options, program)
    wanted, other = schedule.files(paths, job)
    timer = f"{job.unit}.timer"
    stopped = remove_other_schedule(paths, other, timer, env)
    for path, content in wanted:
        write_file(path, content, 0o644)
    if not schedule.systemd_runs(paths):
        return str(wanted[0][0]) + (f"; {stopped}" if stopped else "")
    for command in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", timer]):
        try:
            run_step(command, timeout=SYSTEMCTL_TIMEOUT).perform(env.environ)
        except StepFailed as exc:  # a usage error of host-setup's, as it always was (exit 2)
            raise ConfigError(str(exc)) from None
    return f"{timer} (enabled; {wanted[0][0]})"


def remove_other_schedule(
    paths: SystemPaths, other: list[Path], timer: str, env: Environment
) -> str | None:
    """Remove the other scheduler's files that are ours (an earlier run's): one schedule only.
    Our systemd units go only after their timer is disabled, which may fail (systemd gone,
    systemctl with it): None, or what that failure said."""
    ours = [path for path in other if is_ours(path)]
    stopped = None
    if ours and not schedule.systemd_runs(paths):
        disable = run_step(["systemctl", "disable", "--now", timer], must_succeed=False)
        stopped = disable.perform(env.environ)
    for path in ours:
        path.unlink()
    return stopped


def ensure_account(options: HostSetupOptions, home: Path) -> pwd.struct_passwd:
    """The account, created if missing: a system account with a usable shell (sshd runs the
    forced command through it) and no password ("*": key logins only, not locked)."""
    try:
        account = pwd.getpwnam(options.user)
    except KeyError:
        command = ["useradd", "--system", "--user-group", "--no-create-home"]
        command += ["--home-dir", str(home), "--shell", "/bin/sh", "--password", "*"]
        done = subprocess.run([*command, options.user], capture_output=True, text=True)
        if done.returncode != 0:
            raise ConfigError(f"useradd {options.user} failed: {done.stderr.strip()}") from None
        account = pwd.getpwnam(options.user)
    if account.pw_uid == 0:
        raise ConfigError(f"--user {options.user} is a root account; name a new account")
    return account


def prepare_directory(directory: Path, account: pwd.struct_passwd) -> None:
    """DIR 0700, owned by the account, and the files already in it (copies the guide's root
    SFTP set-up wrote), so the service can read and rotate them."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(directory, account.pw_uid, account.pw_gid)
    directory.chmod(0o700)
    for entry in os.scandir(directory):
        if entry.is_file(follow_symlinks=False):
            os.chown(entry.path, account.pw_uid, account.pw_gid, follow_symlinks=False)


def write_keys(home: Path, line: str) -> Path:
    """~/.ssh/authorized_keys owned by root (0644 in 0755 dirs): the account cannot change it."""
    ssh_dir = home / ".ssh"
    for folder in (home, ssh_dir):
        folder.mkdir(mode=0o755, exist_ok=True)
        os.chown(folder, 0, 0)
        folder.chmod(0o755)
    keys = ssh_dir / "authorized_keys"
    try:
        existing = keys.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = ""
    write_file(keys, merged_keys(existing, line), 0o644)
    os.chown(keys, 0, 0)
    return keys


def run_host_setup(options: HostSetupOptions, env: Environment) -> int:
    check(options)
    if os.geteuid() != 0:
        raise ConfigError("host-setup creates an account: run it as root on the backup host")
    program = options.program or program_path()
    line = key_line(options, program)
    home = home_of(options)
    account = ensure_account(options, home)
    if options.mode == READ_ONLY and not options.directory.is_dir():
        raise ConfigError(f"{options.directory} does not exist: nothing to restore from")
    prepare_directory(options.directory, account)
    keys = write_keys(home, line)
    out = env.stdout
    out.write(f"account {options.user}: the node's key runs only `k3s-backup serve` ({keys})\n")
    out.write(f"  {line}\n")
    if options.mode == APPEND_ONLY:
        installed = install_rotation(options, program, env)
        out.write(f"rotation on this host: {installed} ({retention_args(options)}, daily)\n")
    elif options.mode == PRUNE:
        out.write("the node rotates, within this host's retention (" + retention_args(options))
        out.write(")\n")
    out.write("check it from the node: k3s-backup doctor\n")
    return ExitCode.OK


@click.command("host-setup")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path))
@click.option("--key", required=True, help="The node's public key line, as setup prints it.")
@click.option("--from", "from_hosts", required=True, help="The node's address(es), for from=.")
@click.option("--cluster", required=True, help="The node's cluster_name.")
@click.option(
    "--mode",
    type=click.Choice([APPEND_ONLY, PRUNE, READ_ONLY]),
    default=APPEND_ONLY,
    show_default=True,
    help="append-only: the node deletes nothing (rotation here); prune: the node rotates, within"
    " this host's retention; read-only: a replacement node that only restores.",
)
@click.option("--user", default="k3s-backup", show_default=True, help="The account to create.")
@click.option("--home", type=click.Path(path_type=Path), help="[default: /var/lib/USER]")
@click.option(
    "--program",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The k3s-backup the forced command runs [default: this one].",
)
@click.option("--keep", type=click.IntRange(min=1), default=7, show_default=True)
@click.option("--keep-daily", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--keep-weekly", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--keep-monthly", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--protect-days",
    type=click.IntRange(min=0),
    help="Rotation never deletes a copy this host received in the last N days [default: 7 for"
    " append-only; 0 for prune, where the node rotates].",
)
@click.option(
    "--max-per-day",
    type=click.IntRange(min=0),
    default=48,
    show_default=True,
    help="New copies the service accepts per 24 hours (0: no limit).",
)
@ROOT_OPTION
@pass_context
def command(ctx: Context, /, **options: Any) -> int:
    """On the backup host, as root: an account whose key only runs the k3s-backup service.

    The account gets DIR and a root-owned authorized_keys line whose forced command is
    `k3s-backup serve`; append-only keys also get rotation here (a daily `serve-prune`,
    a systemd timer or a cron file)."""
    return run_host_setup(HostSetupOptions(**options), ctx.env)
