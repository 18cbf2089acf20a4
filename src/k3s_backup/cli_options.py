"""What every command's click definition shares: the context the root group passes down, the
options several commands take, and the exit-code epilogs (built from errors.EXIT_CODES)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from k3s_backup.environment import Environment
from k3s_backup.errors import exit_codes_text
from k3s_backup.plumbing.deadline import DRILL_TIMEOUT, INSPECT_TIMEOUT

if TYPE_CHECKING:
    from k3s_backup.config import Config

MainFunction = Callable[[Sequence[str] | None, Environment | None], int]
F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """What the root group gives each command: the environment, `--config`, and the CLI's own
    entry point (for `demo`, which drives the CLI; passed down, so no module imports cli)."""

    def __init__(self, env: Environment, config_file: Path | None, main: MainFunction) -> None:
        self.env = env
        self.config_file = config_file
        self.main = main

    def config(self) -> Config:
        from k3s_backup.config import config_file_warnings, config_path, load_config

        path = config_path(self.config_file, self.env.environ)
        config = load_config(path)
        for warning in config_file_warnings(path, config):
            self.env.stderr.write(f"warning: {warning}\n")
        return config


pass_context = click.make_pass_decorator(Context)


def epilog(command: str) -> str:
    """The "Exit codes:" block of a command's --help, from the one table in errors.py."""
    return "\b\nExit codes:\n" + exit_codes_text(command)


NEW_CLUSTER_OPTION = click.option(
    "--new-cluster",
    is_flag=True,
    help="This is a new cluster: back it up even where copies of another cluster of this name"
    " are (they are kept, never rotated). Without it such a run takes no backup (exit 1).",
)
FROM_OPTION = click.option(
    "--from",
    "source",
    metavar="local|TARGET",
    help="Take the copy from this node or from one target [default: newest, this node first].",
)


def _timeout_option(default: float, after: str) -> Callable[[Any], Any]:
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=default,
        show_default=True,
        metavar="SECONDS",
        help=f"Give up after this long, with exit 1{after} (0: no limit).",
    )


INSPECT_TIMEOUT_OPTION = _timeout_option(INSPECT_TIMEOUT, "")
DRILL_TIMEOUT_OPTION = _timeout_option(DRILL_TIMEOUT, " and the drill recorded as failed")

AGE_IDENTITY_OPTION = click.option(
    "--identity",
    type=click.Path(path_type=Path, dir_okay=False),
    help="age private key file, for copies on targets with age_recipients.",
)
ALLOW_UNAUTHENTICATED_OPTION = click.option(
    "--allow-unauthenticated",
    is_flag=True,
    help="Also use copies on a target whose manifest has no MAC (made before k3s-backup"
    " authenticated copies): only if you trust that target.",
)


def copy_access_options(command: F) -> F:
    """`--identity` and `--allow-unauthenticated`, in this order: what every command that
    opens a copy of ours takes (fetch, restore, inspect, diff, extract, drill)."""
    return AGE_IDENTITY_OPTION(ALLOW_UNAUTHENTICATED_OPTION(command))


ROOT_OPTION = click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("/"),
    show_default=True,
    help="Treat DIR as / for every system path (tests, staging).",
)


def json_option(help_text: str) -> Callable[[F], F]:
    """`--json` (the `as_json` flag): the command prints one JSON document instead of text."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def backup_host_command(name: str, help_text: str) -> click.Command:
    """A command of the backup host's side (`serve`, `serve-prune`): service/main.py parses it
    (argparse, standard library only) and the entry point calls it before click; this is only
    its entry in the command list, handing the arguments on untouched."""

    @click.command(
        name,
        help=help_text,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    @click.pass_context
    def command(ctx: click.Context) -> int:
        from k3s_backup.service.main import main

        return main([name, *ctx.args])

    return command
