"""What to do when a restore step fails or a signal stops it: while nothing was restored, put
this node (its token, K3s running) and the peers it stopped back as they were; once the
snapshot replaced the datastore, say where the old data is and the exact commands to go back.
The old data is only ever moved aside, never deleted."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from k3s_backup.catalogue import bundle
from k3s_backup.plumbing.plan import StepFailed
from k3s_backup.restore.peers import ssh_command
from k3s_backup.restore.plan import SERVICE, START_TIMEOUT

if TYPE_CHECKING:
    from k3s_backup.restore.executor import Executor
    from k3s_backup.restore.sqlite import SqliteExecutor


def recover(ex: Executor) -> str:
    local = ex.recover_local()
    remote = "; ".join(ex.state.remote_done)
    done = f"\nAlready done on the other nodes: {remote}." if remote else ""
    return local + done + _recover_peers(ex)


def _undo_token(ex: Executor) -> None:
    path = bundle.token_path(ex.config.k3s.data_dir)
    if ex.state.token_backup is not None:
        os.replace(ex.state.token_backup, path)
        ex.report.info(f"Put the previous token back in {path}")
    elif ex.state.token_written:
        path.unlink(missing_ok=True)
    ex.state.token_backup, ex.state.token_written = None, False


def _recover_peers(ex: Executor) -> str:
    """Start the nodes this restore stopped again while this node's data is untouched; else
    name them and leave them stopped (their old data must not rejoin)."""
    if not ex.peers_stopped:
        return ""
    if not ex.data_untouched:
        names = ", ".join(node.name for node in ex.peers_stopped)
        return f"\nStopped by this restore, still stopped: {names} (see the steps to go on)."
    lines = []
    for node in list(ex.peers_stopped):
        try:
            ex.run_remote(node, node.start_command())
            lines.append(f"\nStarted K3s again on {node.role} {node.name}.")
        except StepFailed as exc:
            first = str(exc).splitlines()[0]
            lines.append(
                f"\nK3s on {node.role} {node.name} may still be stopped ({first}): run"
                f" `{ssh_command(node, node.start_command())}`."
            )
    return "".join(lines)


def _start_untouched(ex: Executor, what: str) -> str:
    """Nothing was restored: the token back, K3s started again on its own data."""
    _undo_token(ex)
    ex.data_untouched = True
    if ex.run_local(["systemctl", "start", SERVICE], START_TIMEOUT).returncode == 0:
        return f"Nothing was restored: {what} is untouched and K3s was started again on it."
    return (
        f"Nothing was restored: {what} is untouched, but K3s did not start again: run"
        f" `systemctl start {SERVICE}` and see `journalctl -u k3s`."
    )


def etcd_local(ex: Executor) -> str:
    state = ex.state
    etcd = ex.db / "etcd"
    if not state.stopped:
        ex.data_untouched = True
        return "Nothing was changed on this node."
    if state.old_data is None and not state.started:
        return _start_untouched(ex, f"the etcd data in {etcd}")
    running = "K3s was started" if state.started else "K3s is stopped"
    if state.old_data is None:
        return f"The snapshot is restored in {etcd}. {running}."
    back = [
        f"systemctl stop {SERVICE}",
        f"mv {etcd} {ex.db}/etcd-failed-{ex.stamp}",
        f"mv {state.old_data} {etcd}",
    ]
    if state.token_backup is not None:
        back.append(f"mv {state.token_backup} {bundle.token_path(ex.config.k3s.data_dir)}")
    back.append(f"systemctl start {SERVICE}")
    return (
        f"The snapshot is restored in {etcd}; the previous etcd data is kept in"
        f" {state.old_data}. {running}. To go back to the data from before the restore:"
        f" {'; '.join(back)}"
    )


def sqlite_local(ex: SqliteExecutor) -> str:
    state = ex.state
    if not state.stopped:
        ex.data_untouched = True
        return "Nothing was changed on this node."
    if not state.reset_ran and state.old_data is None and not state.started:
        return etcd_local(ex)  # the database is untouched: start K3s again
    running = "K3s was started" if state.started else "K3s is stopped"
    state_db = ex.db / "state.db"
    if state.old_data is None:
        return f"The snapshot is in place as {state_db}. {running}."
    back = [f"systemctl stop {SERVICE}", f"rm {state_db}"]
    back += [f"mv {path} {ex.db}/" for path in sorted(ex.aside.iterdir())]
    back.append(f"systemctl start {SERVICE}")
    return (
        f"The snapshot is in place as {state_db}; the previous database is kept in"
        f" {ex.aside}. {running}. To go back to it: {'; '.join(back)}"
    )
