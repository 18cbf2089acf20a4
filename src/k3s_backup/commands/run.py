"""`k3s-backup run`: snapshot, ship to every target (catching up), verify, rotate, report.
The work is the backup package's (backup/locked_run.py); this is the command's door to it."""

from __future__ import annotations

import dataclasses
import io

import click

from k3s_backup.backup.locked_run import run_backup
from k3s_backup.backup.preview import preview_run
from k3s_backup.cli_options import NEW_CLUSTER_OPTION, Context, epilog, json_option, pass_context


@click.command("run", epilog=epilog("run"))
@click.option(
    "--log-only",
    is_flag=True,
    help="Report only to log_file (for schedules): the console gets only what was not logged.",
)
@json_option("Print the run report as JSON instead of progress.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what the run would snapshot, ship and rotate (and why); change nothing.",
)
@NEW_CLUSTER_OPTION
@pass_context
def command(ctx: Context, log_only: bool, as_json: bool, dry_run: bool, new_cluster: bool) -> int:
    """Snapshot etcd, ship it to every target, verify, rotate, report."""
    env = ctx.env
    config = ctx.config()
    if dry_run:
        return preview_run(config, env)
    json_out = env.stdout if as_json else None
    if log_only:  # what Reporter logs is not also printed (the schedule appends both to the log)
        env = dataclasses.replace(env, stdout=io.StringIO(), stderr=io.StringIO())
    return run_backup(config, env, json_out, new_cluster)
