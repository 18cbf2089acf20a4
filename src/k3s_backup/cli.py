"""The thin command line on top: parse, load config, call one orchestrating module, map errors
to the documented exit codes. Heavy imports happen inside commands so `--help` stays fast."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from k3s_backup import __version__
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode

if TYPE_CHECKING:
    from k3s_backup.config import Config

EXIT_CODES = """\b
Exit codes:
  0  every copy made and verified
  1  failed (for run: nothing shipped)
  2  configuration or usage error
  3  partial: snapshot made, at least one target failed
  4  another run holds the lock"""


class Context:
    def __init__(self, env: Environment, config_file: Path | None) -> None:
        self.env = env
        self.config_file = config_file

    def config(self) -> Config:
        from k3s_backup.config import config_path, load_config

        return load_config(config_path(self.config_file, self.env.environ))


pass_context = click.make_pass_decorator(Context)


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Configuration file [default: $K3S_BACKUP_CONFIG or /etc/k3s-backup/config.toml].",
)
@click.version_option(__version__, prog_name="k3s-backup")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None) -> None:
    """Off-node, verified, rotated etcd backups for K3s."""
    env = ctx.obj if isinstance(ctx.obj, Environment) else Environment()
    ctx.obj = Context(env, config_file)


@cli.command(epilog=EXIT_CODES)
@pass_context
def run(ctx: Context) -> int:
    """Snapshot etcd, ship it to every target, verify, rotate, report."""
    from k3s_backup.commands.run import run_backup

    return run_backup(ctx.config(), ctx.env)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of copies.")
@pass_context
def list_command(ctx: Context, as_json: bool) -> int:
    """List our snapshots locally and on every target."""
    from k3s_backup.commands.listing import list_copies

    return list_copies(ctx.config(), ctx.env, as_json)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON array of findings.")
@pass_context
def verify(ctx: Context, as_json: bool) -> int:
    """Re-hash every copy where it is stored and compare with its manifest."""
    from k3s_backup.commands.verify import verify_copies

    return verify_copies(ctx.config(), ctx.env, as_json)


@cli.command()
@click.option(
    "--dry-run", is_flag=True, help="Print what would be kept and removed; change nothing."
)
@pass_context
def prune(ctx: Context, dry_run: bool) -> int:
    """Apply rotation alone, locally and on every target."""
    from k3s_backup.commands.prune import prune as prune_copies

    return prune_copies(ctx.config(), ctx.env, dry_run)


@cli.group()
def config() -> None:
    """Show the effective configuration or write a template."""


@config.command("show")
@pass_context
def config_show(ctx: Context) -> int:
    """Print the effective configuration (file values plus defaults) as TOML."""
    from k3s_backup.commands.config_cmd import show

    return show(ctx.config(), ctx.env)


@config.command("init")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the template here (mode 0600) instead of printing it.",
)
@click.option("--force", is_flag=True, help="Replace an existing file.")
@pass_context
def config_init(ctx: Context, output: Path | None, force: bool) -> int:
    """Write a commented configuration template."""
    from k3s_backup.commands.config_cmd import init

    return init(output, force, ctx.env)


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the lab here instead of a temporary directory.",
)
@pass_context
def demo(ctx: Context, workdir: Path | None) -> int:
    """A real backup cycle against a throwaway etcd and SSH backup host on loopback."""
    from k3s_backup.commands.demo import run_demo

    return run_demo(ctx.env, workdir)


def _invoke(argv: Sequence[str] | None, env: Environment) -> int:
    try:
        result: Any = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="k3s-backup",
            standalone_mode=False,
            obj=env,
        )
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show(file=env.stderr)
        return ExitCode.USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.Abort:
        env.stderr.write("Aborted.\n")
        return ExitCode.FAILED
    except BackupError as exc:
        env.stderr.write(f"error: {exc}\n")
        return int(exc.exit_code)
    return int(result) if isinstance(result, int) else ExitCode.OK


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Entry point; tests call it in-process with their own Environment."""
    env = env or Environment()
    with redirect_stdout(env.stdout), redirect_stderr(env.stderr):  # click writes to sys.*
        return _invoke(argv, env)
