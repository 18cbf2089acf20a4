"""`k3s-backup serve`: parsed by service/main.py (argparse, standard library only), which the
entry point calls before click for this command; this is its entry in the command list."""

from __future__ import annotations

import click


@click.command(
    "serve",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.pass_context
def command(ctx: click.Context) -> int:
    """The backup host's service: a node key's forced command there (host-setup sets it)."""
    from k3s_backup.service.main import main

    return main(["serve", *ctx.args])
