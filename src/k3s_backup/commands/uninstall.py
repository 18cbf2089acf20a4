"""`k3s-backup uninstall`: remove the schedule and the logrotate rule that setup installed.

Never touches a backup, a snapshot, the key, known_hosts, the log or the state; the
configuration goes only with --purge-config. Files we did not write are left alone."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from k3s_backup.cli_options import ROOT_OPTION, Context, pass_context
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode
from k3s_backup.plumbing.commands import CommandError, run_command
from k3s_backup.scheduling import Change, SystemPaths, config_file, planned_removal


def _systemctl(command: list[str], env: Environment) -> None:
    try:
        done = run_command(command, timeout=None, env=env.environ)
    except CommandError as exc:
        verdict = str(exc)
    else:
        ok = done.returncode == 0
        verdict = "ok" if ok else f"exit {done.returncode}: {done.stderr.strip()}"
    env.stdout.write(f"ran `{shlex.join(command)}`: {verdict}\n")


def run_uninstall(
    explicit: Path | None, root: Path, purge_config: bool, dry_run: bool, env: Environment
) -> ExitCode:
    paths = SystemPaths(root)
    timers = {paths.timer: "k3s-backup.timer", paths.drill_timer: "k3s-backup-drill.timer"}
    ours = [paths.cron, *timers, paths.service, paths.drill_service, paths.logrotate]
    removals = [(path, planned_removal(path)) for path in ours]  # refuses files not ours
    present = [unit for path, unit in timers.items() if dict(removals)[path] is Change.REMOVED]
    timer_present = bool(present)
    for unit in present if paths.is_system_root and not dry_run else []:
        _systemctl(["systemctl", "disable", "--now", unit], env)
    verb = "would remove" if dry_run else "removed"
    for path, change in removals:
        if change is Change.REMOVED:
            if not dry_run:
                path.unlink()
            env.stdout.write(f"{path}: {verb}\n")
        else:
            env.stdout.write(f"{path}: not installed\n")
    if timer_present and paths.is_system_root and not dry_run:
        _systemctl(["systemctl", "daemon-reload"], env)
    config = config_file(explicit, env.environ, paths)
    if purge_config and config.exists():
        if not dry_run:
            config.unlink()
        env.stdout.write(f"{config}: {verb}\n")
    elif config.exists():
        env.stdout.write(f"{config}: kept (--purge-config removes it)\n")
    env.stdout.write("Backups, snapshots, keys, known_hosts, the log and the state are kept.\n")
    return ExitCode.OK


@click.command("uninstall")
@click.option("--purge-config", is_flag=True, help="Also remove the configuration file.")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; change nothing.")
@ROOT_OPTION
@pass_context
def command(ctx: Context, purge_config: bool, dry_run: bool, root: Path) -> int:
    """Remove the schedule and logrotate rule; never backups, keys or known_hosts."""
    return run_uninstall(ctx.config_file, root, purge_config, dry_run, ctx.env)
