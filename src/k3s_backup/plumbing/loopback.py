"""Loopback plumbing for the servers we start (the test lab's, and `drill`'s throwaway etcd):
free ports, polling with a deadline, stopping by PID, the end of a log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any, Self

from k3s_backup.plumbing.closable import Closable

POLL_INTERVAL = 0.02
STOP_TIMEOUT = 5.0


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the kernel picks it; racy, but rarely reused soon)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: the sockets stay bound until all are picked."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = POLL_INTERVAL
) -> None:
    """Poll `predicate` until it is true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: state, parent, group, session...
    (the name, in parentheses, may hold spaces). FileNotFoundError once `pid` is gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()


def pid_alive(pid: int) -> bool:
    """True if `pid` runs; a zombie counts as gone (another process may be its parent)."""
    try:
        state = stat_fields(pid)[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def pid_runs(pid: int, program: str) -> bool:
    """True if `pid` is alive and runs `program` (guards against a recycled PID)."""
    if not pid_alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return os.path.basename(argv0.decode(errors="replace")) == program


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so it does not linger as a zombie."""
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop_pid(pid: int, program: str, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM `pid` if it still runs `program`, wait for it, SIGKILL if it lingers."""
    if not pid_runs(pid, program):
        _reap(pid)
        return
    _signal(pid, signal.SIGTERM)

    def gone() -> bool:
        _reap(pid)
        return not pid_alive(pid)

    try:
        wait_for(gone, timeout, f"{program} (pid {pid}) to exit")
    except TimeoutError:
        _signal(pid, signal.SIGKILL)
        wait_for(gone, timeout, f"{program} (pid {pid}) to die after SIGKILL")


def log_tail(path: Path, lines: int = 15) -> str:
    """The end of a server's log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def spawn_logged(
    command: Sequence[str], log_path: Path, environ: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in its own session with stdout and stderr appended to `log_path`: a file,
    never an inherited pipe, which a caller capturing output would wait on forever."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if environ is None else dict(environ),
            start_new_session=True,
        )


def stop_child(proc: subprocess.Popen[Any] | None, timeout: float = STOP_TIMEOUT) -> None:
    """Terminate our own child by its PID; SIGKILL it if it lingers past `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


class Service(Closable):
    """A server the tests start and stop: a context manager around `start` and `stop`."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def close(self) -> None:
        self.stop()
