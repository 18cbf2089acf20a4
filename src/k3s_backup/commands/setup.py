"""`k3s-backup setup`: the guide's one-time setup script as an idempotent command.

The six steps are the setup package's (setup/steps.py); this is the command's door to them:
its options, and a stop said as one error line with what was done before it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from k3s_backup.cli_options import NEW_CLUSTER_OPTION, ROOT_OPTION, Context, epilog, pass_context
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode
from k3s_backup.plumbing.plan import StepFailed
from k3s_backup.setup.steps import Setup
from k3s_backup.setup.values import SetupOptions, SetupStop


def run_setup(options: SetupOptions, env: Environment) -> ExitCode:
    setup = Setup(options, env)
    try:
        return setup.run()
    except (SetupStop, StepFailed) as stop:
        env.stderr.write(f"error: {stop}\n")
        if setup.changed:
            env.stderr.write(f"(done before stopping: {', '.join(setup.changed)})\n")
        return stop.code if isinstance(stop, SetupStop) else ExitCode.FAILED
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
