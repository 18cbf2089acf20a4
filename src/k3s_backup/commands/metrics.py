"""`k3s-backup metrics`: the Prometheus metrics of the state file, printed."""

from __future__ import annotations

import click

from k3s_backup.cli_options import Context, pass_context


@click.command("metrics")
@pass_context
def command(ctx: Context) -> int:
    """Print the Prometheus metrics (last run, last success, copies, drill) from the state."""
    from k3s_backup.monitoring.metrics import render

    ctx.env.stdout.write(render(ctx.config(), ctx.env.now()))
    return 0
