"""The etcd executor: carries out a restore's plan on this node (local commands are argument
lists, each in a session of its own) and on the other nodes over SSH, keeping what it did in a
NodeState so that recovery.py can bring the node back or say how."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path

from k3s_backup.catalogue import bundle
from k3s_backup.config import Config, NodeConfig
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError
from k3s_backup.plumbing.atomic import write_atomic
from k3s_backup.plumbing.commands import CommandError, Completed, run_command
from k3s_backup.plumbing.loopback import wait_for
from k3s_backup.plumbing.plan import Plan, Step, StepFailed
from k3s_backup.plumbing.signals import SignalGuard
from k3s_backup.report import Reporter
from k3s_backup.restore import preflight, recovery
from k3s_backup.restore.peers import RemoteNode, ssh_command
from k3s_backup.restore.plan import (
    POLL_INTERVAL,
    RESET_TIMEOUT,
    SERVICE,
    START_TIMEOUT,
    STOP_TIMEOUT,
    NodeState,
    done,
    last_lines,
    numbered,
    step,
)


class Executor:
    """Runs the plan's steps on this node and over SSH; `snapshot` is the verified plain file."""

    def __init__(
        self,
        config: Config,
        env: Environment,
        reporter: Reporter,
        snapshot: Path,
        restore_bundle: bundle.Bundle | None,
        put_token: bool,
        nodes: tuple[list[NodeConfig], list[NodeConfig]],
    ) -> None:
        self.config = config
        self.env = env
        self.report = reporter
        self.snapshot = snapshot
        self.bundle = restore_bundle
        self.put_token = put_token
        self.state = NodeState()
        self.stamp = env.now().strftime("%Y%m%d-%H%M%S")
        self.db = config.k3s.data_dir / "server" / "db"
        self.node_name = preflight.k3s_node_name(config.k3s.config_dir, config.node_name)
        self.servers = [RemoteNode(n, "server") for n in nodes[0]]
        self.agents = [RemoteNode(n, "agent") for n in nodes[1]]
        self.guard: SignalGuard | None = None  # set while the steps run
        self.peers_stopped: list[RemoteNode] = []  # by this restore (or perhaps: link lost)
        self.data_untouched = False  # set by the recovery when nothing was restored here
        self.last_table = ""  # what `kubectl get nodes` last printed

    # -- commands --------------------------------------------------------------------------

    def run_local(self, argv: list[str], timeout: float) -> Completed:
        try:  # in a session of its own: the terminal's Ctrl-C never cuts a step mid-way
            return run_command(argv, timeout=timeout, env=self.env.environ, new_session=True)
        except CommandError as exc:
            raise StepFailed(str(exc)) from None

    def _must(self, argv: list[str], timeout: float) -> Completed:
        result = self.run_local(argv, timeout)
        if result.returncode != 0:
            raise StepFailed(
                f"`{' '.join(argv)}` exited {result.returncode}:\n"
                f"{last_lines(result.stderr + result.stdout)}"
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
        return self.run_local(["systemctl", "is-active", "--quiet", SERVICE], 60).returncode == 0

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
            f"--cluster-reset-restore-path={self.snapshot}",
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
        result = self.run_local([self.k3s, "kubectl", "get", "nodes"], 60)
        if result.returncode != 0:
            return None
        self.last_table = result.stdout
        return _statuses(result.stdout)

    def _node_ready(self) -> bool:
        nodes = self._nodes()
        return nodes is not None and nodes.get(self.node_name) == "Ready"

    def wait_ready(self) -> None:
        timeout = float(self.config.restore.ready_timeout)
        self._poll(
            self._node_ready, timeout, f"`k3s kubectl get nodes` reporting {self.node_name} Ready"
        )

    def show_nodes(self) -> None:
        # the table that just reported this node Ready (step 4) if no other node was started
        # since, else a new one
        table = "" if self.servers or self.agents else self.last_table
        table = table or self._must([self.k3s, "kubectl", "get", "nodes"], 60).stdout
        self.report.info(table.rstrip())
        stale = sorted(n for n, status in _statuses(table).items() if status != "Ready")
        if stale:
            self.report.warn(
                f"the restored cluster lists nodes that are not Ready: {', '.join(stale)}."
                " Servers and agents that still exist become Ready as they start again; a node"
                " that no longer exists (the lost server, under its old name) stays NotReady:"
                " remove it with "
                + "; ".join(f"`{self.k3s} kubectl delete node {n}`" for n in stale)
            )

    # -- the other nodes -------------------------------------------------------------------

    def run_remote(self, node: RemoteNode, argv: list[str]) -> None:
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
                f"{last_lines(result.output)}"
            )
        if argv == node.start_command() and node in self.peers_stopped:
            self.peers_stopped.remove(node)
        self.state.remote_done.append(f"{node.name}: {' '.join(argv)}")

    def remote_step(self, number: str, node: RemoteNode, argv: list[str]) -> Step:
        text = f"on {node.role} {node.name}: {' '.join(argv)}"
        return step(number, text, lambda: self.run_remote(node, argv), ssh_command(node, argv))

    def close(self) -> None:
        for node in [*self.servers, *self.agents]:
            node.close()

    # -- the plan ----------------------------------------------------------------------------

    def plan(self) -> Plan:
        stop = f"systemctl stop {SERVICE}"
        steps: list[Step] = [step("1", f"stop K3s on this node: {stop}", self.stop_local, stop)]
        steps += [self.remote_step("1", n, n.stop_command()) for n in self.servers + self.agents]
        steps.append(step("2", f"get the backup file: done, verified: {self.snapshot}", done))
        if self.put_token:
            token = bundle.token_path(self.config.k3s.data_dir)
            text = (
                f"put the snapshot's server token in {token} (the current one, if any, is kept"
                f" as token.bak-{self.stamp})"
            )
            steps.append(step("2", text, self.place_token))
        steps.append(self.restore_step())
        start = f"systemctl start {SERVICE}"
        steps.append(step("4", f"start K3s: {start}", self.start_local, start))
        timeout = float(self.config.restore.ready_timeout)
        text = (
            f"wait until `k3s kubectl get nodes` reports this node ({self.node_name}) Ready"
            f" (at most {timeout:.0f} s)"
        )
        nodes = f"{shlex.quote(self.k3s)} kubectl get nodes"
        steps.append(step("4", text, self.wait_ready, f"{nodes}  (until this node is Ready)"))
        for node in self.servers:
            steps.append(self.remote_step("4", node, node.move_db_command(self.stamp)))
            steps.append(self.remote_step("4", node, node.start_command()))
        steps += [self.remote_step("4", node, node.start_command()) for node in self.agents]
        steps.append(step("5", "verify: k3s kubectl get nodes", self.show_nodes, nodes))
        return numbered(steps)

    def restore_step(self) -> Step:
        """Step 3, where the snapshot replaces this node's datastore."""
        text = (
            f"{' '.join(self.reset_command)}  (K3s moves {self.db / 'etcd'} to"
            f" {self.db}/etcd-old-<unix>, restores, and exits by itself)"
        )
        return step("3", text, self.cluster_reset, shlex.join(self.reset_command))

    # -- after a failure ---------------------------------------------------------------------

    def recover(self) -> str:
        """Bring this node back where it was if nothing was restored; else say how to go back."""
        return recovery.recover(self)

    def recover_local(self) -> str:
        return recovery.etcd_local(self)


def _statuses(table: str) -> dict[str, str]:
    """Node name -> STATUS from the table `kubectl get nodes` prints."""
    rows = (line.split() for line in table.splitlines()[1:])
    return {row[0]: row[1].split(",")[0] for row in rows if len(row) >= 2}
