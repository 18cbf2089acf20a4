"""The thin command line on top: parse, load config, call one orchestrating module, map errors
to the documented exit codes. Heavy imports happen inside commands so `--help` stays fast."""

from __future__ import annotations

import dataclasses
import io
import logging
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from k3s_backup import __version__
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode, Interrupted
from k3s_backup.plumbing.deadline import DRILL_TIMEOUT, INSPECT_TIMEOUT

if TYPE_CHECKING:
    from k3s_backup.config import Config

EXIT_CODES = """\b
Exit codes:
  0  every copy made and verified
  1  failed (for run: nothing shipped)
  2  configuration or usage error
  3  partial: snapshot made, a target (or local rotation) failed
  4  another run holds the lock
  130  interrupted by Ctrl-C (SIGINT); 143: by SIGTERM"""


SETUP_EXIT_CODES = """\b
Exit codes:
  0  set up (or already set up) and the first backup verified
  1  a step failed (connection, key refused, host key changed, first backup)
  2  usage error, or an answer is needed (host key) and stdin is not a terminal
  3  set up, but the first backup was partial"""

LOG_FORMAT_ENV_VAR = "K3S_BACKUP_LOG_FORMAT"  # read from the injected environment, as in tests

HEALTH_EXIT_CODES = """\b
Exit codes:
  0  healthy (status: nothing WARN or FAIL; doctor: no FAIL)
  1  unhealthy
  2  configuration or usage error"""


class Context:
    def __init__(self, env: Environment, config_file: Path | None) -> None:
        self.env = env
        self.config_file = config_file

    def config(self) -> Config:
        from k3s_backup.config import config_file_warnings, config_path, load_config

        path = config_path(self.config_file, self.env.environ)
        config = load_config(path)
        for warning in config_file_warnings(path, config):
            self.env.stderr.write(f"warning: {warning}\n")
        return config


pass_context = click.make_pass_decorator(Context)


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = Context(env, config_file)


NEW_CLUSTER_OPTION = click.option(
    "--new-cluster",
    is_flag=True,
    help="This is a new cluster: back it up even where copies of another cluster of this name"
    " are (they are kept, never rotated). Without it such a run takes no backup (exit 1).",
)


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--log-only",
    is_flag=True,
    help="Report only to log_file (for schedules): the console gets only what was not logged.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the run report as JSON instead of progress."
)
@NEW_CLUSTER_OPTION
@pass_context
def run(ctx: Context, log_only: bool, as_json: bool, new_cluster: bool) -> int:
    """Snapshot etcd, ship it to every target, verify, rotate, report."""
    from k3s_backup.commands.run import run as run_command

    env = ctx.env
    json_out = env.stdout if as_json else None
    if log_only:  # what Reporter logs is not also printed (the schedule appends both to the log)
        env = dataclasses.replace(env, stdout=io.StringIO(), stderr=io.StringIO())
    return run_command(ctx.config(), env, json_out, new_cluster)


@cli.command()
@pass_context
def metrics(ctx: Context) -> int:
    """Print the Prometheus metrics (last run, last success, copies, drill) from the state."""
    from k3s_backup.monitoring.metrics import render

    ctx.env.stdout.write(render(ctx.config(), ctx.env.now()))
    return 0


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
@click.option(
    "--adopt-unknown",
    is_flag=True,
    help="Rotate copies of unknown cluster identity (made before identities were recorded)"
    " as this cluster's.",
)
@pass_context
def prune(ctx: Context, dry_run: bool, adopt_unknown: bool) -> int:
    """Apply rotation alone, locally and on every target (this cluster's copies only)."""
    from k3s_backup.commands.prune import prune as prune_copies

    return prune_copies(ctx.config(), ctx.env, dry_run, adopt_unknown)


FROM_OPTION = click.option(
    "--from",
    "source",
    metavar="local|TARGET",
    help="Take the copy from this node or from one target [default: newest, this node first].",
)
INSPECT_TIMEOUT_OPTION = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=INSPECT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Give up after this long, with exit 1 (0: no limit).",
)
DRILL_TIMEOUT_OPTION = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=DRILL_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Give up after this long, with exit 1 and the drill recorded as failed (0: no limit).",
)


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

RESTORE_EXIT_CODES = """\b
Exit codes:
  0  restored and this node reports Ready (or: the dry run's plan)
  1  nothing restored: no copy verifies, the pre-flight refused, or not confirmed;
     or a step failed (the message names it, the node's state and how to go back)
  2  configuration or usage error (unknown or ambiguous NAME, unknown target; copies of
     several clusters and no NAME or --cluster with --yes; a question and stdin at its end,
     as under cron or </dev/null: run again with --yes)
  4  a backup run holds the lock
  130, 143  interrupted by SIGINT or SIGTERM (the message says where each node
     is and how to go on or back; the verified file is kept)"""


@cli.command(epilog=RESTORE_EXIT_CODES)
@click.argument("name", default="latest")
@FROM_OPTION
@click.option("--dry-run", is_flag=True, help="Fetch, verify, check, show the plan; run nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (cluster name, the saved token).")
@click.option("--force", is_flag=True, help="Go on despite the pre-flight's overridable problems.")
@click.option(
    "--servers",
    metavar="HOST,...",
    help="The other servers, over SSH [default: [[restore.servers]]; '' for none].",
)
@click.option(
    "--agents", metavar="HOST,...", help="The agents, over SSH [default: [[restore.agents]]]."
)
@click.option(
    "--cluster",
    metavar="UID",
    help="Restore a copy of this cluster (its kube-system UID, or the UID's start; 'unknown'"
    " for copies made before identities were recorded), when copies of several are present.",
)
@AGE_IDENTITY_OPTION
@ALLOW_UNAUTHENTICATED_OPTION
@pass_context
def restore(
    ctx: Context,
    name: str,
    source: str | None,
    dry_run: bool,
    yes: bool,
    force: bool,
    servers: str | None,
    agents: str | None,
    cluster: str | None,
    identity: Path | None,
    allow_unauthenticated: bool,
) -> int:
    """Restore snapshot NAME (latest, a name or a unique prefix) on this node, verified first."""
    from k3s_backup.commands.restore import Options
    from k3s_backup.commands.restore import restore as restore_snapshot

    def hosts(value: str | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(h.strip() for h in value.split(",") if h.strip())

    options = Options(
        wanted=name,
        source=source,
        dry_run=dry_run,
        yes=yes,
        force=force,
        servers=hosts(servers),
        agents=hosts(agents),
        identity=identity,
        cluster=cluster,
        allow_unauthenticated=allow_unauthenticated,
    )
    return restore_snapshot(ctx.config(), ctx.env, options)


FETCH_EXIT_CODES = """\b
Exit codes:
  0  FILE written: the plain snapshot, verified
  1  no copy of NAME verifies (each copy's problem is named)
  2  configuration or usage error (unknown or ambiguous NAME, FILE exists)"""


@cli.command(epilog=FETCH_EXIT_CODES)
@click.argument("name")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="The plain snapshot file to write (mode 0600).",
)
@FROM_OPTION
@click.option("--force", is_flag=True, help="Replace an existing FILE.")
@AGE_IDENTITY_OPTION
@ALLOW_UNAUTHENTICATED_OPTION
@pass_context
def fetch(
    ctx: Context,
    name: str,
    out: Path,
    source: str | None,
    force: bool,
    identity: Path | None,
    allow_unauthenticated: bool,
) -> int:
    """Download, verify and decode snapshot NAME into a plain file usable by K3s or etcdutl."""
    from k3s_backup.commands.fetch import fetch as fetch_snapshot

    return fetch_snapshot(
        ctx.config(), ctx.env, name, out, source, force, identity, allow_unauthenticated
    )


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


@cli.command()
@click.argument("snapshot")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.option("--keys", "keys_prefix", metavar="PREFIX", help="List the live keys under PREFIX.")
@click.option("--get", "get_key", metavar="KEY", help="Print one object, decoded.")
@AGE_IDENTITY_OPTION
@ALLOW_UNAUTHENTICATED_OPTION
@INSPECT_TIMEOUT_OPTION
@pass_context
def inspect(
    ctx: Context,
    snapshot: str,
    as_json: bool,
    keys_prefix: str | None,
    get_key: str | None,
    identity: Path | None,
    allow_unauthenticated: bool,
    timeout: float,
) -> int:
    """What a snapshot holds: revision, keys, Kubernetes objects (no etcd needed).

    SNAPSHOT is a file, one of our snapshot names or a unique prefix of one (fetched and
    verified from wherever a good copy is), or latest.
    """
    if keys_prefix is not None and get_key is not None:
        raise click.UsageError("--keys and --get cannot be combined")
    from k3s_backup.commands.inspect import inspect as inspect_snapshot

    return inspect_snapshot(
        snapshot,
        ctx.config,
        ctx.env,
        as_json,
        keys_prefix,
        get_key,
        identity,
        allow_unauthenticated,
        timeout,
    )


@cli.command()
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@AGE_IDENTITY_OPTION
@ALLOW_UNAUTHENTICATED_OPTION
@INSPECT_TIMEOUT_OPTION
@pass_context
def diff(
    ctx: Context,
    old: str,
    new: str,
    as_json: bool,
    identity: Path | None,
    allow_unauthenticated: bool,
    timeout: float,
) -> int:
    """Objects added, removed and changed from snapshot OLD to NEW."""
    from k3s_backup.commands.diff import diff as diff_snapshots

    return diff_snapshots(
        old, new, ctx.config, ctx.env, as_json, identity, allow_unauthenticated, timeout
    )


EXTRACT_EXIT_CODES = """\b
Exit codes:
  0  every selected object extracted (or applied)
  1  nothing extracted: no object matches, none could be read, a key is wrong, or --apply
     failed or refused
  2  configuration or usage error
  3  partial: some objects written, the others named on stderr (not decodable, not
     decryptable)"""


@cli.command(epilog=EXTRACT_EXIT_CODES)
@click.argument("snapshot")
@click.option("--namespace", "-n", metavar="NS", help="Objects in NS, the Namespace itself first.")
@click.option(
    "--resource",
    metavar="R",
    help="Objects of R, named as inspect does (secrets, widgets.example.com).",
)
@click.option("--name", metavar="N", help="Objects named N.")
@click.option(
    "-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="One 0600 file per object under DIR (new or empty): <resource>/<namespace>/<name>.yaml.",
)
@click.option(
    "--keep-owner-references",
    is_flag=True,
    help="Keep ownerReferences (removed by default: an object whose owner is gone would be"
    " garbage-collected) and extract objects a controller owns.",
)
@click.option(
    "--raw", is_flag=True, help="With --out: write objects that cannot be decoded as stored (.raw)."
)
@click.option(
    "--encryption-config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="K3s's encryption config for Secrets encrypted at rest"
    " [default: <data_dir>/server/cred/encryption-config.json].",
)
@click.option(
    "--deleted-since",
    metavar="OTHER",
    help="Only objects present in SNAPSHOT but absent from snapshot OTHER.",
)
@click.option(
    "--apply",
    "apply_live",
    is_flag=True,
    help="Apply with `k3s kubectl apply` after a server-side dry run; reports each object.",
)
@click.option("--overwrite", is_flag=True, help="With --apply: replace objects that exist live.")
@AGE_IDENTITY_OPTION
@ALLOW_UNAUTHENTICATED_OPTION
@pass_context
def extract(
    ctx: Context,
    snapshot: str,
    namespace: str | None,
    resource: str | None,
    name: str | None,
    output: str,
    out_dir: Path | None,
    keep_owner_references: bool,
    raw: bool,
    encryption_config: Path | None,
    deleted_since: str | None,
    apply_live: bool,
    overwrite: bool,
    identity: Path | None,
    allow_unauthenticated: bool,
) -> int:
    """Objects of a snapshot as manifests for `kubectl apply -f`, server fields removed.

    SNAPSHOT is as for inspect. Selection options combine; without any, every object.
    """
    if raw and out_dir is None:
        raise click.UsageError("--raw needs --out DIR (stored bytes are not YAML)")
    if overwrite and not apply_live:
        raise click.UsageError("--overwrite goes with --apply")
    if apply_live and out_dir is not None:
        raise click.UsageError("--apply and --out cannot be combined")
    from k3s_backup.commands.extract import Options, Selection
    from k3s_backup.commands.extract import extract as extract_objects

    options = Options(
        output=output,
        out_dir=out_dir,
        keep_owner_references=keep_owner_references,
        raw=raw,
        encryption_config=encryption_config,
        deleted_since=deleted_since,
        apply=apply_live,
        overwrite=overwrite,
        allow_unauthenticated=allow_unauthenticated,
    )
    selection = Selection(namespace, resource, name)
    return extract_objects(snapshot, selection, options, ctx.config, ctx.env, identity)


@cli.command()
@click.argument("snapshot", required=False)
@AGE_IDENTITY_OPTION
@ALLOW_UNAUTHENTICATED_OPTION
@DRILL_TIMEOUT_OPTION
@pass_context
def drill(
    ctx: Context,
    snapshot: str | None,
    identity: Path | None,
    allow_unauthenticated: bool,
    timeout: float,
) -> int:
    """Restore a copy into a throwaway etcd on loopback and check it (default: latest).

    It takes the run lock (exit 4 while a backup runs) and records its outcome in the state.
    """
    from k3s_backup.commands.drill import drill as run_drill

    return run_drill(snapshot, ctx.config(), ctx.env, identity, allow_unauthenticated, timeout)


@cli.group("recovery-key")
def recovery_key_group() -> None:
    """The cluster's recovery key: it authenticates every copy and encrypts restore bundles."""


@recovery_key_group.command("create")
@pass_context
def recovery_key_create(ctx: Context) -> int:
    """Create this cluster's recovery key (first server; setup does it for new installs)."""
    from k3s_backup.commands.recovery_key_cmd import create

    return create(ctx.config(), ctx.env)


@recovery_key_group.command("show")
@pass_context
def recovery_key_show(ctx: Context) -> int:
    """Print the recovery key (to copy it off the node)."""
    from k3s_backup.commands.recovery_key_cmd import show

    return show(ctx.config(), ctx.env)


@recovery_key_group.command("set")
@click.argument("source", metavar="FILE|-")
@pass_context
def recovery_key_set(ctx: Context, source: str) -> int:
    """Put the cluster's key in place on another server or a replacement node ('-': stdin)."""
    from k3s_backup.commands.recovery_key_cmd import set_key

    return set_key(ctx.config(), ctx.env, source)


@recovery_key_group.command("age-identity")
@pass_context
def recovery_key_age_identity(ctx: Context) -> int:
    """Print the age identity that decrypts restore bundles by hand (`age -d -i`)."""
    from k3s_backup.commands.recovery_key_cmd import age_identity

    return age_identity(ctx.config(), ctx.env)


ROOT_OPTION = click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("/"),
    show_default=True,
    help="Treat DIR as / for every system path (tests, staging).",
)


@cli.command(epilog=SETUP_EXIT_CODES)
@click.option("--host", help="The backup host (name or address).")
@click.option("--user", help="SSH user on the backup host [default: root].")
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
@ROOT_OPTION
@pass_context
def setup(ctx: Context, /, **options: Any) -> int:
    """Set up backups: key, host key, remote dir, config, schedule, first backup."""
    from k3s_backup.commands.setup import SetupOptions, run_setup

    return run_setup(SetupOptions(config_file=ctx.config_file, **options), ctx.env)


@cli.command()
@click.option("--purge-config", is_flag=True, help="Also remove the configuration file.")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; change nothing.")
@ROOT_OPTION
@pass_context
def uninstall(ctx: Context, purge_config: bool, dry_run: bool, root: Path) -> int:
    """Remove the schedule and logrotate rule; never backups, keys or known_hosts."""
    from k3s_backup.commands.uninstall import run_uninstall

    return run_uninstall(ctx.config_file, root, purge_config, dry_run, ctx.env)


@cli.command(epilog=HEALTH_EXIT_CODES)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@ROOT_OPTION
@pass_context
def status(ctx: Context, as_json: bool, root: Path) -> int:
    """Last run, next run, copies everywhere, and how fresh the newest off-node copy is."""
    from k3s_backup.commands.status import show_status

    return show_status(ctx.config_file, ctx.env, root, as_json)


@cli.command(epilog=HEALTH_EXIT_CODES)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@ROOT_OPTION
@pass_context
def doctor(ctx: Context, as_json: bool, root: Path) -> int:
    """Check everything a backup needs, each with what was seen and the command that fixes it."""
    from k3s_backup.commands.doctor import run_doctor

    return run_doctor(ctx.config_file, ctx.env, root, as_json)


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
    except Interrupted as stop:  # outside a run's own report of it (interrupts.py)
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
    env = env or Environment()
    with redirect_stdout(env.stdout), redirect_stderr(env.stderr):  # click writes to sys.*
        return _invoke(argv, env)
