"""`k3s-backup serve-prune`: parsed by service/main.py (argparse, standard library only), which the
entry point calls before click for this command; this is its entry in the command list."""

from __future__ import annotations

import click


@click.command(
    "serve-prune",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.pass_context
def command(ctx: click.Context) -> int:
    """Rotate a backup directory on the backup host (for append-only node keys)."""
    from k3s_backup.service.main import main

    return main(["serve-prune", *ctx.args])
