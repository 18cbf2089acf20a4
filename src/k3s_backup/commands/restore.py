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

import os
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from k3s_backup.catalogue import bundle
from k3s_backup.catalogue.clusters import local_time
from k3s_backup.catalogue.inventory import Copy
from k3s_backup.catalogue.lookup import (
    LATEST,
    ChoiceError,
    choose,
    copies_of,
    find_copies,
    load_identities,
)
from k3s_backup.catalogue.recovery_key import Trust
from k3s_backup.catalogue.retrieval import (
    FetchedCopy,
    fetch_bundle,
    fetch_verified,
    private_workdir,
)
from k3s_backup.cli_options import (
    AGE_IDENTITY_OPTION,
    ALLOW_UNAUTHENTICATED_OPTION,
    FROM_OPTION,
    Context,
    epilog,
    pass_context,
)
from k3s_backup.config import Config, NodeConfig
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode, Interrupted, SnapshotError
from k3s_backup.formats.cluster_identity import live_database, read_identity
from k3s_backup.plumbing.atomic import write_atomic
from k3s_backup.plumbing.commands import CommandError, Completed, run_command
from k3s_backup.plumbing.lock import exclusive_run
from k3s_backup.plumbing.loopback import wait_for
from k3s_backup.plumbing.signals import SignalGuard
from k3s_backup.policy.identity import ClusterIdentity, describe, uid_of
from k3s_backup.report import Reporter
from k3s_backup.restore import preflight
from k3s_backup.restore.peers import RemoteNode

STOP_TIMEOUT = 120.0
RESET_TIMEOUT = 30 * 60.0
START_TIMEOUT = 10 * 60.0
POLL_INTERVAL = 0.5
SERVICE = "k3s"


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


def select_nodes(configured: list[NodeConfig], hosts: tuple[str, ...] | None) -> list[NodeConfig]:
    """The configured nodes, or the hosts named on the command line, each with the SSH settings
    of the configured entry for that host if there is one, else the defaults."""
    if hosts is None:
        return configured
    by_host = {node.host: node for node in configured}
    return [by_host.get(host) or NodeConfig(host=host) for host in hosts]


class StepFailed(Exception):
    """A step of the restore failed; the message says what happened."""


@dataclass
class Step:
    number: str
    text: str
    action: Callable[[], None]
    command: str | None = None  # what an operator types to do this step by hand


@dataclass
class NodeState:
    """What has been done to this node so far: enough to say where it is and how to go back."""

    stopped: bool = False
    token_backup: Path | None = None
    token_written: bool = False
    reset_ran: bool = False
    old_data: Path | None = None  # etcd-old-<unix>, or the SQLite files moved aside
    started: bool = False
    remote_done: list[str] = field(default_factory=list)


def _last_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join("    " + line for line in lines[-count:])


class Executor:
    """Runs the plan's steps on this node (local commands are argument lists) and over SSH."""

    def __init__(
        self,
        config: Config,
        env: Environment,
        reporter: Reporter,
        fetched: FetchedCopy,
        restore_bundle: bundle.Bundle | None,
        put_token: bool,
        options: Options,
    ) -> None:
        self.config = config
        self.env = env
        self.report = reporter
        self.fetched = fetched
        self.bundle = restore_bundle
        self.put_token = put_token
        self.state = NodeState()
        self.stamp = env.now().strftime("%Y%m%d-%H%M%S")
        self.db = config.k3s.data_dir / "server" / "db"
        self.node_name = preflight.k3s_node_name(config.k3s.config_dir, config.node_name)
        servers = select_nodes(config.restore.servers, options.servers)
        self.servers = [RemoteNode(n, "server") for n in servers]
        self.agents = [
            RemoteNode(n, "agent") for n in select_nodes(config.restore.agents, options.agents)
        ]
        self.guard: SignalGuard | None = None  # set while the steps run
        self.peers_stopped: list[RemoteNode] = []  # by this restore (or perhaps: link lost)
        self.data_untouched = False  # set by the recovery when nothing was restored here

    # -- commands --------------------------------------------------------------------------

    def _run(self, argv: list[str], timeout: float) -> Completed:
        try:  # in a session of its own: the terminal's Ctrl-C never cuts a step mid-way
            return run_command(argv, timeout=timeout, env=self.env.environ, new_session=True)
        except CommandError as exc:
            raise StepFailed(str(exc)) from None

    def _must(self, argv: list[str], timeout: float) -> Completed:
        result = self._run(argv, timeout)
        if result.returncode != 0:
            raise StepFailed(
                f"`{' '.join(argv)}` exited {result.returncode}:\n"
                f"{_last_lines(result.stderr + result.stdout)}"
            )
        return result

    def _poll(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        def checked() -> bool:
            if self.guard is not None:
                self.guard.check()  # a wait is safe to leave: nothing is half done
            return ready()

        try:
            wait_for(checked, timeout, what, POLL_INTERVAL)
        except TimeoutError:
            raise StepFailed(f"{what} not reached within {timeout:.0f} s") from None

    def _active(self) -> bool:
        return self._run(["systemctl", "is-active", "--quiet", SERVICE], 60).returncode == 0

    # -- the steps on this node --------------------------------------------------------------

    @property
    def k3s(self) -> str:
        return self.config.k3s.bin

    @property
    def reset_command(self) -> list[str]:
        return [
            self.k3s,
            "server",
            "--cluster-reset",
            f"--cluster-reset-restore-path={self.fetched.plain}",
            "--data-dir",
            str(self.config.k3s.data_dir),
        ]

    def stop_local(self) -> None:
        self.state.stopped = True  # from here on K3s may be down, whatever happens next
        self._must(["systemctl", "stop", SERVICE], STOP_TIMEOUT)
        self._poll(lambda: not self._active(), STOP_TIMEOUT, "K3s stopped")

    def place_token(self) -> None:
        assert self.bundle is not None
        path = bundle.token_path(self.config.k3s.data_dir)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.exists():
            backup = path.with_name(f"token.bak-{self.stamp}")
            os.replace(path, backup)
            self.state.token_backup = backup
            self.report.info(f"Kept the previous token as {backup}")
        write_atomic(path, (self.bundle.token + "\n").encode())
        self.state.token_written = True

    def _etcd_olds(self) -> set[Path]:
        return set(self.db.glob("etcd-old-*")) if self.db.is_dir() else set()

    def cluster_reset(self) -> None:
        before = self._etcd_olds()
        had_data = (self.db / "etcd").exists()
        self.state.reset_ran = True
        try:
            self._must(self.reset_command, RESET_TIMEOUT)
        finally:
            new = sorted(self._etcd_olds() - before)
            self.state.old_data = new[-1] if new else None
        if had_data and self.state.old_data is None:
            raise StepFailed(
                f"K3s exited 0 but did not move {self.db / 'etcd'} aside to etcd-old-<unix>:"
                " not starting K3s on data whose origin is unclear"
            )
        if not (self.db / "etcd").is_dir():
            raise StepFailed(f"K3s exited 0 but {self.db / 'etcd'} does not exist")
        where = self.state.old_data or "nothing: there was no previous etcd data"
        self.report.info(f"K3s restored the snapshot; the previous etcd data was moved to {where}")

    def start_local(self) -> None:
        self._must(["systemctl", "start", SERVICE], START_TIMEOUT)
        self.state.started = True

    def _nodes(self) -> dict[str, str] | None:
        """Node name -> STATUS from `k3s kubectl get nodes`, None while it cannot answer."""
        result = self._run([self.k3s, "kubectl", "get", "nodes"], 60)
        if result.returncode != 0:
            return None
        rows = (line.split() for line in result.stdout.splitlines()[1:])
        return {row[0]: row[1].split(",")[0] for row in rows if len(row) >= 2}

    def _node_ready(self) -> bool:
        nodes = self._nodes()
        return nodes is not None and nodes.get(self.node_name) == "Ready"

    def wait_ready(self) -> None:
        timeout = float(self.config.restore.ready_timeout)
        self._poll(
            self._node_ready, timeout, f"`k3s kubectl get nodes` reporting {self.node_name} Ready"
        )

    def show_nodes(self) -> None:
        result = self._must([self.k3s, "kubectl", "get", "nodes"], 60)
        self.report.info(result.stdout.rstrip())
        stale = sorted(n for n, status in (self._nodes() or {}).items() if status != "Ready")
        if stale:
            self.report.warn(
                f"the restored cluster lists nodes that are not Ready: {', '.join(stale)}."
                " Servers and agents that still exist become Ready as they start again; a node"
                " that no longer exists (the lost server, under its old name) stays NotReady:"
                " remove it with "
                + "; ".join(f"`{self.k3s} kubectl delete node {n}`" for n in stale)
            )

    # -- the other nodes -------------------------------------------------------------------

    def _remote(self, node: RemoteNode, argv: list[str]) -> None:
        if argv == node.stop_command() and node not in self.peers_stopped:
            self.peers_stopped.append(node)  # a link lost during the stop may have stopped it
        try:
            result = node.run(argv)
        except BackupError as exc:
            node.close()  # a later command (starting it again) opens a new connection
            raise StepFailed(str(exc)) from None
        if result.status != 0:
            raise StepFailed(
                f"{node.name}: `{' '.join(argv)}` exited {result.status}:\n"
                f"{_last_lines(result.output)}"
            )
        if argv == node.start_command() and node in self.peers_stopped:
            self.peers_stopped.remove(node)
        self.state.remote_done.append(f"{node.name}: {' '.join(argv)}")

    def remote_step(self, number: str, node: RemoteNode, argv: list[str]) -> Step:
        text = f"on {node.role} {node.name}: {' '.join(argv)}"
        return Step(number, text, lambda: self._remote(node, argv), ssh_command(node, argv))

    def close(self) -> None:
        for node in [*self.servers, *self.agents]:
            node.close()

    # -- the plan ----------------------------------------------------------------------------

    def plan(self) -> list[Step]:
        steps = [
            Step(
                "1",
                f"stop K3s on this node: systemctl stop {SERVICE}",
                self.stop_local,
                f"systemctl stop {SERVICE}",
            )
        ]
        steps += [self.remote_step("1", n, n.stop_command()) for n in self.servers + self.agents]
        steps.append(Step("2", f"get the backup file: done, verified: {self.fetched.plain}", _done))
        if self.put_token:
            token = bundle.token_path(self.config.k3s.data_dir)
            text = (
                f"put the snapshot's server token in {token} (the current one, if any, is kept"
                f" as token.bak-{self.stamp})"
            )
            steps.append(Step("2", text, self.place_token))
        steps.append(self.restore_step())
        start = f"systemctl start {SERVICE}"
        steps.append(Step("4", f"start K3s: {start}", self.start_local, start))
        timeout = float(self.config.restore.ready_timeout)
        text = (
            f"wait until `k3s kubectl get nodes` reports this node ({self.node_name}) Ready"
            f" (at most {timeout:.0f} s)"
        )
        nodes = f"{shlex.quote(self.k3s)} kubectl get nodes"
        steps.append(Step("4", text, self.wait_ready, f"{nodes}  (until this node is Ready)"))
        for node in self.servers:
            steps.append(self.remote_step("4", node, node.move_db_command(self.stamp)))
            steps.append(self.remote_step("4", node, node.start_command()))
        steps += [self.remote_step("4", node, node.start_command()) for node in self.agents]
        steps.append(Step("5", "verify: k3s kubectl get nodes", self.show_nodes, nodes))
        return steps

    def restore_step(self) -> Step:
        """Step 3, where the snapshot replaces this node's datastore."""
        text = (
            f"{' '.join(self.reset_command)}  (K3s moves {self.db / 'etcd'} to"
            f" {self.db}/etcd-old-<unix>, restores, and exits by itself)"
        )
        return Step("3", text, self.cluster_reset, shlex.join(self.reset_command))

    # -- after a failure ---------------------------------------------------------------------

    def _undo_token(self) -> None:
        path = bundle.token_path(self.config.k3s.data_dir)
        if self.state.token_backup is not None:
            os.replace(self.state.token_backup, path)
            self.report.info(f"Put the previous token back in {path}")
        elif self.state.token_written:
            path.unlink(missing_ok=True)
        self.state.token_backup, self.state.token_written = None, False

    def recover(self) -> str:
        """Bring this node back where it was if nothing was restored; else say how to go back."""
        local = self._recover_local()
        remote = "; ".join(self.state.remote_done)
        done = f"\nAlready done on the other nodes: {remote}." if remote else ""
        return local + done + self._recover_peers()

    def _recover_peers(self) -> str:
        """Start the nodes this restore stopped again while this node's data is untouched;
        else name them and leave them stopped (their old data must not rejoin)."""
        if not self.peers_stopped:
            return ""
        if not self.data_untouched:
            names = ", ".join(node.name for node in self.peers_stopped)
            return f"\nStopped by this restore, still stopped: {names} (see the steps to go on)."
        lines = []
        for node in list(self.peers_stopped):
            try:
                self._remote(node, node.start_command())
                lines.append(f"\nStarted K3s again on {node.role} {node.name}.")
            except StepFailed as exc:
                first = str(exc).splitlines()[0]
                lines.append(
                    f"\nK3s on {node.role} {node.name} may still be stopped ({first}): run"
                    f" `{ssh_command(node, node.start_command())}`."
                )
        return "".join(lines)

    def _recover_local(self) -> str:
        state = self.state
        etcd = self.db / "etcd"
        if not state.stopped:
            self.data_untouched = True
            return "Nothing was changed on this node."
        if state.old_data is None and not state.started:
            self._undo_token()
            self.data_untouched = True
            if self._run(["systemctl", "start", SERVICE], START_TIMEOUT).returncode == 0:
                return (
                    f"Nothing was restored: the etcd data in {etcd} is untouched and K3s was"
                    " started again on it."
                )
            return (
                f"Nothing was restored: the etcd data in {etcd} is untouched, but K3s did not"
                f" start again: run `systemctl start {SERVICE}` and see `journalctl -u k3s`."
            )
        running = "K3s was started" if state.started else "K3s is stopped"
        if state.old_data is None:
            return f"The snapshot is restored in {etcd}. {running}."
        back = [
            f"systemctl stop {SERVICE}",
            f"mv {etcd} {self.db}/etcd-failed-{self.stamp}",
            f"mv {state.old_data} {etcd}",
        ]
        if state.token_backup is not None:
            back.append(f"mv {state.token_backup} {bundle.token_path(self.config.k3s.data_dir)}")
        back.append(f"systemctl start {SERVICE}")
        return (
            f"The snapshot is restored in {etcd}; the previous etcd data is kept in"
            f" {state.old_data}. {running}. To go back to the data from before the restore:"
            f" {'; '.join(back)}"
        )


SQLITE_FILES = ("state.db", "state.db-wal", "state.db-shm")


class SqliteExecutor(Executor):
    """Restores K3s's single-server SQLite datastore (kine): stop K3s, move the old `state.db`
    *with* its `-wal` and `-shm` aside (SQLite would replay an old WAL into the new database),
    put the verified copy in place, start K3s."""

    @property
    def aside(self) -> Path:
        return self.db / f"sqlite-old-{self.stamp}"

    def put_database(self) -> None:
        self.db.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.db, prefix=".state.db.")
        try:  # the copy is complete on the same filesystem before anything is moved
            with os.fdopen(fd, "wb") as out, self.fetched.plain.open("rb") as copy:
                shutil.copyfileobj(copy, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            present = [self.db / name for name in SQLITE_FILES if (self.db / name).exists()]
            if present:
                self.aside.mkdir(mode=0o700)
                for path in present:
                    os.replace(path, self.aside / path.name)
                self.state.old_data = self.aside
            os.replace(temp, self.db / "state.db")  # mkstemp made it 0600
        finally:
            Path(temp).unlink(missing_ok=True)
        self.state.reset_ran = True
        where = self.aside if present else "nothing: there was no previous database"
        self.report.info(f"Put the snapshot in {self.db / 'state.db'}; the previous one: {where}")

    def plan(self) -> list[Step]:
        if self.servers:
            raise SnapshotError(
                "a SQLite datastore serves a single server: drop --servers and"
                " [[restore.servers]] to restore it"
            )
        return super().plan()

    def restore_step(self) -> Step:
        text = (
            f"move {', '.join(SQLITE_FILES)} in {self.db} aside to {self.aside}, and put the"
            " verified copy in place as state.db"
        )
        return Step("3", text, self.put_database)

    def _recover_local(self) -> str:
        state = self.state
        if not state.stopped:
            self.data_untouched = True
            return "Nothing was changed on this node."
        if not state.reset_ran and state.old_data is None and not state.started:
            return super()._recover_local()  # the database is untouched: start K3s again
        running = "K3s was started" if state.started else "K3s is stopped"
        if state.old_data is None:
            return f"The snapshot is in place as {self.db / 'state.db'}. {running}."
        back = [f"systemctl stop {SERVICE}", f"rm {self.db / 'state.db'}"]
        back += [f"mv {path} {self.db}/" for path in sorted(self.aside.iterdir())]
        back.append(f"systemctl start {SERVICE}")
        return (
            f"The snapshot is in place as {self.db / 'state.db'}; the previous database is kept"
            f" in {self.aside}. {running}. To go back to it: {'; '.join(back)}"
        )


def _done() -> None:
    """A step already done before the plan is shown (the copy is fetched and verified)."""


def ssh_command(node: RemoteNode, argv: list[str]) -> str:
    """The `ssh` line that runs `argv` on `node` with the same key and known_hosts (named when
    not ssh's defaults), quoted once for the local shell and once for the remote one (ssh
    passes the command to the remote shell as one string)."""
    defaults = NodeConfig(host=node.host)
    options = [f"-p {node.port}"]
    if node.identity_file is not None and node.identity_file != defaults.identity_file:
        options.append(f"-i {shlex.quote(str(node.identity_file))}")
    if node.known_hosts != defaults.known_hosts:
        options.append(f"-o UserKnownHostsFile={shlex.quote(str(node.known_hosts))}")
    command = shlex.quote(shlex.join(argv))
    return f"ssh {' '.join(options)} {shlex.quote(f'{node.user}@{node.host}')} {command}"


def _preflight(
    config: Config, env: Environment, fetched: FetchedCopy, restore_bundle: bundle.Bundle | None
) -> list[preflight.Problem]:
    data_dir = config.k3s.data_dir
    current_version = bundle.k3s_version(config.k3s.bin, env.environ)
    found = [
        preflight.missing_bundle(fetched.name.filename) if restore_bundle is None else None,
        preflight.token_problem(data_dir, restore_bundle),
        preflight.server_line_problem(config.k3s.config_dir),
        preflight.reset_flag_problem(data_dir),
        preflight.disk_problem(data_dir, preflight.required_space(fetched.check.size)),
        preflight.version_problem(current_version, restore_bundle),
    ]
    return [problem for problem in found if problem is not None]


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

    def _settle_problems(self, problems: list[preflight.Problem]) -> bool | None:
        """Whether to put the bundle's token in place; None if the pre-flight refuses."""
        put_token = False
        refusals = []
        for problem in problems:
            if problem.token_fix:
                put_token = self._agree_to_token(problem)
                if not put_token:
                    refusals.append(
                        problem.message + "; answer yes (or pass --yes) to put it in place"
                    )
            elif problem.overridable and self.options.force:
                self.report.warn(f"pre-flight: {problem.message} (overridden by --force)")
            else:
                hint = " (--force overrides this one)" if problem.overridable else ""
                refusals.append(problem.message + hint)
        for message in refusals:
            self.report.error(f"pre-flight: {message}")
        if refusals:
            self.report.error(
                "restore refused by the pre-flight checks; nothing was stopped or changed"
            )
            return None
        return put_token

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

    def _show_plan(self, fetched: FetchedCopy, steps: list[Step]) -> None:
        self.report.info(
            f"Plan to restore {fetched.name.filename} (verified copy from {fetched.location}):"
        )
        snapshot = read_identity(fetched.plain, fetched.plain.parent)
        database = live_database(self.config.k3s.data_dir)
        current = read_identity(database, self.config.state_dir) if database else None
        self.report.info(f"  the snapshot holds:     {describe(snapshot)}")
        now = describe(current) if database else "nothing (no datastore on this node yet)"
        if current is None and database:
            now = f"unknown ({database} could not be read)"
        self.report.info(f"  this node now holds:    {now}")
        if snapshot and current and snapshot.uid != current.uid and current.kubernetes:
            self.report.warn(
                "the snapshot is of another cluster than the one this node runs now: the"
                " current cluster is replaced as a whole"
            )
        for number, step in zip(_letters(steps), steps, strict=True):
            self.report.info(f"  {number}. {step.text}")

    def _one_cluster(self, candidates: list[Copy]) -> list[Copy]:
        """The copies of one cluster: the one `--cluster` names, or the only one there; with
        several and no NAME, the operator chooses (never the newest across clusters)."""
        wanted = self.options.cluster
        if wanted is not None:
            chosen = [c for c in candidates if _matches(c.identity, wanted)]
            if not chosen:
                raise ChoiceError(
                    f"no copy of cluster {wanted!r}; these clusters have copies:\n"
                    + "\n".join(_cluster_lines(candidates))
                )
            return chosen
        groups = _by_cluster(candidates)
        if self.options.wanted != LATEST or len(groups) < 2:
            return candidates
        lines = _cluster_lines(candidates)
        question = (
            f"Copies of {len(groups)} different clusters named {self.config.cluster_name} are"
            " here; restore which?\n" + "\n".join(lines) + "\n"
        )
        if not self.options.yes:
            answer = _ask(self.env, question + f"Number (1-{len(groups)}): ")
            if answer.isdigit() and 1 <= int(answer) <= len(groups):
                return groups[int(answer) - 1]
        raise ChoiceError(
            question + "Name the copy (`k3s-backup restore NAME`) or the cluster (`--cluster"
            " UID`, `--cluster unknown` for copies made before identities were recorded)"
        )

    def run(self, workdir: Path) -> int:
        """The exit code; `changing` says whether to keep `workdir` (the verified file)."""
        with self.guard:
            try:
                return self._run(workdir)
            except Interrupted as exc:  # from step 1 on, a signal waits for the step's end
                where = "" if self.changing else " before anything was stopped: nothing was changed"
                self.report.error(f"interrupted by {exc.name}{where}")
                return exc.exit_code

    def _run(self, workdir: Path) -> int:
        candidates, _ = find_copies(self.config, self.report, self.options.source, identities=True)
        candidates = self._one_cluster(candidates)
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
        others = [c for c in copies_of(everywhere, name) if c not in nearest]
        restore_bundle = fetch_bundle(self.config, self.report, nearest + others, identities, trust)
        put_token = self._settle_problems(
            _preflight(self.config, self.env, fetched, restore_bundle)
        )
        if put_token is None:
            return ExitCode.FAILED
        kind = SqliteExecutor if fetched.name.suffix.startswith(".db") else Executor
        executor = kind(
            self.config, self.env, self.report, fetched, restore_bundle, put_token, self.options
        )
        try:
            steps = executor.plan()
            self._show_plan(fetched, steps)
            if self.options.dry_run:
                self.report.info("Dry run: nothing was stopped or changed.")
                return ExitCode.OK
            if not self._confirmed():
                self.report.error("not confirmed; nothing was stopped or changed")
                return ExitCode.FAILED
            return self._execute(executor, steps)
        finally:
            executor.close()

    def _execute(self, executor: Executor, steps: list[Step]) -> int:
        self.changing = True
        self.guard.defer()
        executor.guard = self.guard
        labels = _letters(steps)
        for index, (number, step) in enumerate(zip(labels, steps, strict=True)):
            try:
                self.guard.check()
            except Interrupted as exc:
                self.report.error(f"interrupted by {exc.name} before step {number}")
                return self._stop(executor, steps[index:], exc.exit_code)
            self.report.info(f"Step {number}: {step.text}")
            try:
                step.action()
            except Interrupted as exc:
                self.report.error(f"interrupted by {exc.name} during step {number}")
                return self._stop(executor, steps[index:], exc.exit_code)
            except (StepFailed, OSError) as exc:
                self.report.error(f"step {number} failed: {exc}")
                return self._stop(executor, steps[index:], ExitCode.FAILED)
        self.changing = False
        self.report.info(
            f"Restore of {executor.fetched.name.filename} complete: this node is Ready"
            + (
                f"; the previous data is kept in {executor.state.old_data}"
                if executor.state.old_data
                else ""
            )
        )
        return ExitCode.OK

    def _stop(self, executor: Executor, remaining: list[Step], code: int) -> int:
        """After a failure or a signal: bring back or describe every node; how to go on."""
        self.report.error(executor.recover())
        name = executor.fetched.name.filename
        if executor.data_untouched:
            self.report.error(f"To restore after all: k3s-backup restore {name}")
        else:
            commands = [step.command for step in remaining if step.command]
            if commands:
                self.report.error("To go on with the restore, run in order: " + "; ".join(commands))
        self.report.error(f"The verified snapshot is kept at {executor.fetched.plain}")
        return code


def _matches(identity: ClusterIdentity | None, wanted: str) -> bool:
    if wanted == "unknown":
        return identity is None
    if wanted == "none":
        return identity is not None and not identity.kubernetes
    return identity is not None and identity.kubernetes and identity.uid.startswith(wanted)


def _by_cluster(candidates: list[Copy]) -> list[list[Copy]]:
    """Copies grouped by cluster identity, the group with the newest copy first."""
    groups: dict[str | None, list[Copy]] = {}
    for candidate in candidates:
        groups.setdefault(uid_of(candidate.identity), []).append(candidate)
    return sorted(groups.values(), key=lambda g: max(c.name for c in g), reverse=True)


def _cluster_lines(candidates: list[Copy]) -> list[str]:
    lines = []
    for number, group in enumerate(_by_cluster(candidates), 1):
        newest = max(group, key=lambda c: c.name)
        where = ", ".join(dict.fromkeys(c.location for c in group if c.snapshot == newest.snapshot))
        lines.append(
            f"  {number}. {describe(newest.identity)}: newest {newest.snapshot}"
            f" ({local_time(newest.name.unix)}) on {where}"
        )
    return lines


def _letters(steps: list[Step]) -> list[str]:
    """`1a`, `1b`, `3`, ...: the guide's step numbers, lettered where one has several parts."""
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.number] = counts.get(step.number, 0) + 1
    seen: dict[str, int] = {}
    labels = []
    for step in steps:
        index = seen.get(step.number, 0)
        seen[step.number] = index + 1
        suffix = "abcdefghijklmnopqrstuvwxyz"[index] if counts[step.number] > 1 else ""
        labels.append(step.number + suffix)
    return labels


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
@AGE_IDENTITY_OPTION
@ALLOW_UNAUTHENTICATED_OPTION
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
