"""The thin command line on top: the root group, the registry of commands, and the mapping of
errors to the documented exit codes. Each command owns its click definition (options, help) in
its module under commands/, loaded only when it runs, so `--help` and every command start with
no more imports than they need."""

from __future__ import annotations

import dataclasses
import gc
import importlib
import logging
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import click

from k3s_backup import __version__
from k3s_backup.cli_options import Context, epilog
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode, Interrupted

LOG_FORMAT_ENV_VAR = "K3S_BACKUP_LOG_FORMAT"  # read from the injected environment, as in tests

# name -> (module whose `command` it is, the one-line help `k3s-backup --help` shows without
# importing it; a test checks both agree with the command's own docstring).
COMMANDS: dict[str, tuple[str, str]] = {
    "config": (
        "config_cmd",
        "Show the effective configuration or write a template.",
    ),
    "demo": (
        "demo",
        "A real backup cycle against a throwaway etcd and SSH backup host on loopback.",
    ),
    "diff": (
        "diff",
        "Objects added, removed and changed from snapshot OLD to NEW.",
    ),
    "doctor": (
        "doctor",
        "Check everything a backup needs, each with what was seen and the command that fixes it.",
    ),
    "drill": (
        "drill",
        "Restore a copy into a throwaway etcd on loopback and check it (default: latest).",
    ),
    "extract": (
        "extract",
        "Objects of a snapshot as manifests for `kubectl apply -f`, server fields removed.",
    ),
    "fetch": (
        "fetch",
        "Download, verify and decode snapshot NAME into a plain file usable by K3s or etcdutl.",
    ),
    "host-setup": (
        "host_setup",
        "On the backup host, as root: an account whose key only runs the k3s-backup service.",
    ),
    "inspect": (
        "inspect",
        "What a snapshot holds: revision, keys, Kubernetes objects (no etcd needed).",
    ),
    "list": (
        "listing",
        "List our snapshots locally and on every target.",
    ),
    "metrics": (
        "metrics",
        "Print the Prometheus metrics (last run, last success, copies, drill) from the state.",
    ),
    "prune": (
        "prune",
        "Apply rotation alone, locally and on every target (this cluster's copies only).",
    ),
    "recovery-key": (
        "recovery_key_cmd",
        "The cluster's recovery key: it authenticates every copy and encrypts restore bundles.",
    ),
    "restore": (
        "restore",
        "Restore snapshot NAME (latest, a name or a unique prefix) on this node, verified first.",
    ),
    "run": (
        "run",
        "Snapshot etcd, ship it to every target, verify, rotate, report.",
    ),
    "serve": (
        "serve",
        "The backup host's service: a node key's forced command there (host-setup sets it).",
    ),
    "serve-prune": (
        "serve_prune",
        "Rotate a backup directory on the backup host (for append-only node keys).",
    ),
    "setup": (
        "setup",
        "Set up backups: key, host key, remote dir, config, schedule, first backup.",
    ),
    "status": (
        "status",
        "Last run, next run, copies everywhere, and how fresh the newest off-node copy is.",
    ),
    "uninstall": (
        "uninstall",
        "Remove the schedule and logrotate rule; never backups, keys or known_hosts.",
    ),
    "verify": (
        "verify",
        "Re-hash every copy where it is stored and compare with its manifest.",
    ),
}


class LazyGroup(click.Group):
    """click's documented lazy-loading group: a command's module is imported when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"k3s_backup.commands.{COMMANDS[cmd_name][0]}")
        command: click.Command = module.command
        settle_imports()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
            rows = [(name, _shortened(COMMANDS[name][1], limit)) for name in COMMANDS]
            formatter.write_dl(sorted(rows))


def settle_imports() -> None:
    """After the command's imports, when main() held the collector off for them: the modules,
    classes and pydantic schemas just made live until exit, so they go to the collector's
    permanent generation (not scanned by any later collection, nor by the one at exit) and
    collection resumes for what the command itself makes."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _shortened(text: str, limit: int) -> str:
    """As click shortens a command's help in its parent's listing: whole words, then '...'."""
    return text if len(text) <= limit else text[: limit - 3].rsplit(" ", 1)[0] + "..."


@click.group(
    cls=LazyGroup, epilog=epilog("run"), context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Configuration file [default: $K3S_BACKUP_CONFIG or /etc/k3s-backup/config.toml].",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="Lines in log_file: [time] text, or one JSON object each for log shippers"
    " [default: $K3S_BACKUP_LOG_FORMAT or text].",
)
@click.version_option(__version__, prog_name="k3s-backup")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, log_format: str | None) -> None:
    """Off-node, verified, rotated etcd backups for K3s."""
    env = ctx.obj if isinstance(ctx.obj, Environment) else Environment()
    log_format = log_format or env.environ.get(LOG_FORMAT_ENV_VAR) or "text"
    if log_format not in ("text", "json"):
        raise click.UsageError(f"{LOG_FORMAT_ENV_VAR} must be text or json, got {log_format!r}")
    if log_format == "json":
        env = dataclasses.replace(env, log_format="json")
    ctx.obj = Context(env, config_file, main)


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
    except Interrupted as stop:  # outside a run's own report of it (plumbing/signals.py)
        env.stderr.write(f"error: interrupted ({stop.signal_name})\n")
        return int(stop.exit_code)
    return int(result) if isinstance(result, int) else ExitCode.OK


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Entry point; tests call it in-process with their own Environment."""
    # paramiko imports invoke (~35 ms and ~6 MiB of peak RSS per run) only to run ssh_config
    # `Match exec` lines, which k3s-backup never reads; it works unchanged without invoke.
    # Done here, not at import, so a program importing k3s_backup keeps its own invoke.
    sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]
    # paramiko logs a cut link as "Socket exception: Connection reset by peer (104)", which
    # Python's last-resort handler would print bare on stderr; our own message names the target.
    paramiko_log = logging.getLogger("paramiko")
    if not paramiko_log.handlers:
        paramiko_log.addHandler(logging.NullHandler())
    if argv is None and env is None:  # the installed command (tests call in with their own)
        # Importing a command makes ~40k objects and no garbage, yet the collector scans the
        # growing heap again and again meanwhile (~15-20 % of a restore's import CPU, measured:
        # docs/benchmarks.md); LazyGroup.get_command turns it back on (settle_imports).
        gc.disable()
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["serve"], ["serve-prune"]):  # the backup host's side: no click, no config
        from k3s_backup.service.main import main as service_main

        settle_imports()
        return service_main(args)
    env = env or Environment()
    with redirect_stdout(env.stdout), redirect_stderr(env.stderr):  # click writes to sys.*
        return _invoke(argv, env)
