"""`k3s-backup uninstall`: remove the schedule and the logrotate rule that setup installed.

Never touches a backup, a snapshot, the key, known_hosts, the log or the state; the
configuration goes only with --purge-config. Files we did not write are left alone."""

from __future__ import annotations

from pathlib import Path

import click

from k3s_backup.cli_options import ROOT_OPTION, Context, pass_context
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode
from k3s_backup.plumbing.plan import Plan, apply, note, remove_file, run_step
from k3s_backup.scheduling import Change, SystemPaths, config_file, planned_removal


def uninstall_plan(explicit: Path | None, root: Path, purge_config: bool, env: Environment) -> Plan:
    """The timers stopped, our files removed (ForeignFileError for one we did not write),
    systemd told; the configuration only with `purge_config`."""
    paths = SystemPaths(root)
    timers = {paths.timer: "k3s-backup.timer", paths.drill_timer: "k3s-backup-drill.timer"}
    ours = [paths.cron, *timers, paths.service, paths.drill_service, paths.logrotate]
    removals = [(path, planned_removal(path)) for path in ours]  # refuses files not ours
    present = [unit for path, unit in timers.items() if dict(removals)[path] is Change.REMOVED]
    skipped = None if paths.is_system_root else f"uninstalling under --root {root}"
    plan = Plan()
    for unit in present:
        plan.add(run_step(["systemctl", "disable", "--now", unit], False, skipped))
    for path, change in removals:
        removed = change is Change.REMOVED
        plan.add(remove_file(path) if removed else note(f"{path}: not installed"))
    if present:
        plan.add(run_step(["systemctl", "daemon-reload"], False, skipped))
    config = config_file(explicit, env.environ, paths)
    if purge_config and config.exists():
        plan.add(remove_file(config))
    elif config.exists():
        plan.add(note(f"{config}: kept (--purge-config removes it)"))
    plan.add(note("Backups, snapshots, keys, known_hosts, the log and the state are kept."))
    return plan


def run_uninstall(
    explicit: Path | None, root: Path, purge_config: bool, dry_run: bool, env: Environment
) -> ExitCode:
    plan = uninstall_plan(explicit, root, purge_config, env)
    apply(plan, dry_run, env.environ, lambda line: env.stdout.write(line + "\n"))
    return ExitCode.OK


@click.command("uninstall")
@click.option("--purge-config", is_flag=True, help="Also remove the configuration file.")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; change nothing.")
@ROOT_OPTION
@pass_context
def command(ctx: Context, purge_config: bool, dry_run: bool, root: Path) -> int:
    """Remove the schedule and logrotate rule; never backups, keys or known_hosts."""
    return run_uninstall(ctx.config_file, root, purge_config, dry_run, ctx.env)
