"""`k3s-backup restore [NAME|latest]`: the guide's five manual steps as one command that cannot
make things worse.

Order matters: choose, fetch and verify the copy, read its restore bundle and run the pre-flight
*before* anything is stopped; then show the plan (numbered as in the guide), ask for the cluster
name, and execute step by step. On a failure it stops, says which step failed, what state this
node is in and how to get back; the old etcd data is only ever moved aside by K3s, never deleted.

SIGINT and SIGTERM are a state, not a crash: before anything is stopped they end the command at
once; from step 1 on, the running step finishes (K3s's cluster-reset runs in its own session, so
the terminal's Ctrl-C never reaches it mid-write), then the restore stops there as after a
failure: this node and the other nodes it stopped are started again if nothing was restored,
else the message says where everything is and the exact commands to go on or back. The verified
file is kept until the restore succeeded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import click

from k3s_backup.catalogue import bundle
from k3s_backup.catalogue.lookup import LATEST, choose, copies_of, find_copies, load_identities
from k3s_backup.catalogue.recovery_key import Trust
from k3s_backup.catalogue.retrieval import (
    FetchedCopy,
    fetch_bundle,
    fetch_verified,
    private_workdir,
)
from k3s_backup.cli_options import (
    FROM_OPTION,
    Context,
    copy_access_options,
    epilog,
    pass_context,
)
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode, Interrupted
from k3s_backup.plumbing.background import in_background
from k3s_backup.plumbing.lock import exclusive_run
from k3s_backup.plumbing.plan import Plan
from k3s_backup.plumbing.signals import SignalGuard
from k3s_backup.report import Reporter
from k3s_backup.restore import preflight
from k3s_backup.restore.apply import apply, show
from k3s_backup.restore.choice import Holding, holdings, node_holding, one_cluster
from k3s_backup.restore.executor import Executor
from k3s_backup.restore.peers import select_nodes
from k3s_backup.restore.sqlite import SqliteExecutor
from k3s_backup.targets.retry import one_connection_each


@dataclass(frozen=True)
class Options:
    wanted: str
    source: str | None
    dry_run: bool
    yes: bool
    force: bool
    servers: tuple[str, ...] | None = None  # --servers: replaces [[restore.servers]]
    identity: Path | None = None  # age private key, for copies on encrypting targets
    agents: tuple[str, ...] | None = None
    cluster: str | None = None  # --cluster: a cluster UID (or its start), `unknown` or `none`
    allow_unauthenticated: bool = False  # copies whose manifest has no MAC, on a target


class NoAnswer(BackupError):
    """A question, and stdin at its end (cron, `</dev/null`): nobody can answer it."""

    exit_code = ExitCode.USAGE


def _ask(env: Environment, question: str) -> str:
    """The answer; NoAnswer at the end of stdin (an empty line is an answer: no)."""
    env.stdout.write(question)
    env.stdout.flush()
    line = env.stdin.readline()
    if not line:
        env.stdout.write("\n")
        raise NoAnswer(
            "restore needs an answer and stdin has none (it is at its end, as under cron or"
            " with </dev/null); nothing was stopped or changed. Answer on a terminal, or check"
            " the plan (`k3s-backup restore --dry-run`) and run again with --yes (-y)"
        )
    return line.strip()


class Restore:
    def __init__(self, config: Config, env: Environment, options: Options) -> None:
        self.config = config
        self.env = env
        self.options = options
        self.report = Reporter(env, None if options.dry_run else config.log_file)
        self.guard = SignalGuard(self._signal_received)
        self.changing = False  # from step 1 until the restore succeeded: keep the verified file

    def _signal_received(self, stop: Interrupted) -> None:
        self.report.warn(
            f"{stop.name} received: finishing the running step (cutting it could leave this node"
            " half changed), then stopping and saying where each node is"
        )

    def _agree_to_token(self, problem: preflight.Problem) -> bool:
        if self.options.yes or self.options.dry_run:
            self.report.warn(
                f"pre-flight: {problem.message}: the plan puts the snapshot's token in place"
            )
            return True
        self.report.warn(f"pre-flight: {problem.message}")
        answer = _ask(self.env, "Put the token saved with the snapshot in place? [y/N] ")
        return answer.lower() in ("y", "yes")

    def _confirmed(self) -> bool:
        if self.options.yes:
            return True
        cluster = self.config.cluster_name
        answer = _ask(
            self.env,
            f"This replaces the whole state of cluster {cluster}; every change since the snapshot"
            f" is lost.\nType the cluster name ({cluster}) to proceed: ",
        )
        return answer == cluster

    def _show_plan(self, fetched: FetchedCopy, plan: Plan, holding: Holding) -> None:
        self.report.info(
            f"Plan to restore {fetched.name.filename} (verified copy from {fetched.location}):"
        )
        recorded = (fetched.identity,) if fetched.recorded else None
        lines, other_cluster = holdings(fetched.plain, recorded, holding)
        for line in lines:
            self.report.info(line)
        if other_cluster:
            self.report.warn(other_cluster)
        show(plan, self.report.info)

    def run(self, workdir: Path) -> int:
        """The exit code; `changing` says whether to keep `workdir` (the verified file)."""
        with self.guard:
            try:
                return self._run(workdir)
            except Interrupted as exc:  # from step 1 on, a signal waits for the step's end
                where = "" if self.changing else " before anything was stopped: nothing was changed"
                self.report.error(f"interrupted by {exc.name}{where}")
                return exc.exit_code

    def _fetch(self, workdir: Path) -> tuple[FetchedCopy, bundle.Bundle | None]:
        """The verified copy, and its restore bundle (None if no location has one)."""
        candidates, _ = find_copies(self.config, self.report, self.options.source, identities=True)
        ask = None if self.options.yes else lambda question: _ask(self.env, question)
        latest = self.options.wanted == LATEST
        candidates = one_cluster(
            candidates, self.options.cluster, latest, ask, self.config.cluster_name
        )
        name = choose(candidates, self.options.wanted)
        copies = copies_of(candidates, name)
        identities = load_identities(self.options.identity)
        trust = Trust.of(self.config.recovery_key_file, self.options.allow_unauthenticated)
        fetched = fetch_verified(
            self.config, self.env, self.report, copies, workdir, identities, trust
        )
        # The bundle beside the copy restored, else beside any other copy of the snapshot.
        nearest = sorted(copies, key=lambda c: c.location != fetched.location)
        everywhere = candidates
        if self.options.source is not None:
            everywhere, _ = find_copies(self.config, self.report, None)
        tried = {(c.location, c.name) for c in nearest}  # listed with identities or without
        others = [c for c in copies_of(everywhere, name) if (c.location, c.name) not in tried]
        found = fetch_bundle(self.config, self.report, nearest + others, identities, trust)
        return fetched, found

    def _run(self, workdir: Path) -> int:
        # `k3s --version` (for the pre-flight) and reading what this node holds (for the plan)
        # run while the copy is fetched
        version = bundle.K3sVersion(self.config.k3s.bin, self.env.environ)
        holding = in_background(lambda: node_holding(self.config))
        try:
            with one_connection_each():  # listing, manifest, copy and bundle: one connection each
                fetched, restore_bundle = self._fetch(workdir)
            k3s = version.result()
        finally:
            version.stop()  # the fetch failed, or a signal came: its answer is not wanted
        problems = preflight.problems(
            self.config, fetched.name.filename, fetched.check.size, restore_bundle, k3s
        )
        force = self.options.force
        put_token = preflight.settle(problems, force, self._agree_to_token, self.report)
        if put_token is None:
            return ExitCode.FAILED
        kind = SqliteExecutor if fetched.name.suffix.startswith(".db") else Executor
        nodes = (
            select_nodes(self.config.restore.servers, self.options.servers),
            select_nodes(self.config.restore.agents, self.options.agents),
        )
        executor = kind(
            self.config, self.env, self.report, fetched.plain, restore_bundle, put_token, nodes
        )
        try:
            plan = executor.plan()
            self._show_plan(fetched, plan, holding())
            if self.options.dry_run:
                self.report.info("Dry run: nothing was stopped or changed.")
                return ExitCode.OK
            if not self._confirmed():
                self.report.error("not confirmed; nothing was stopped or changed")
                return ExitCode.FAILED
            self.changing = True
            code = apply(executor, plan, self.guard, fetched.name.filename)
            self.changing = code != ExitCode.OK
            return code
        finally:
            executor.close()


def restore(config: Config, env: Environment, options: Options) -> int:
    with exclusive_run(config.state_dir):
        workdir = private_workdir(config.state_dir, "restore-")
        runner = Restore(config, env, options)
        try:
            return runner.run(workdir)
        finally:
            if not runner.changing:  # kept from step 1 until the restore succeeded
                shutil.rmtree(workdir, ignore_errors=True)


@click.command("restore", epilog=epilog("restore"))
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
@copy_access_options
@pass_context
def command(
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
    return restore(ctx.config(), ctx.env, options)
