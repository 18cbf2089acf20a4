"""Ctrl-C and SIGTERM during a run become `Interrupted`, so the run unwinds through its
cleanups (a temporary upload removed) and reports the phase it was in.

Python's default turns SIGINT into KeyboardInterrupt (which click prints as "Aborted.", exit 1)
and leaves SIGTERM to kill the process outright: no message, no state, the temporary left on
the backup host.

Raised at any instruction, the exception could land inside paramiko while it holds a lock of
the connection, and the cleanup that follows (removing the temporary over that connection)
would wait on that lock forever. So while a target is in use (`signals_deferred()`), a signal
is only noted, and raised at the next safe point: `safe_point()` between two chunks of an
upload, or the end of the region, after the connection is closed. Elsewhere (the snapshot's
subprocess, local rotation) it is raised at once. A second signal while the first is handled is
ignored, so the cleanup and the report finish (systemd sends SIGKILL after its stop timeout).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from k3s_backup.errors import ExitCode, Interrupted

SIGNALS = {
    signal.SIGINT: ("Ctrl-C", ExitCode.INTERRUPTED),
    signal.SIGTERM: ("SIGTERM", ExitCode.TERMINATED),
}


class _State:
    pending: Interrupted | None = None
    deferring = 0


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    for caught in SIGNALS:
        signal.signal(caught, signal.SIG_IGN)
    name, code = SIGNALS[signal.Signals(signum)]
    _State.pending = Interrupted(name, code)
    if not _State.deferring:
        safe_point()


def safe_point() -> None:
    """Raise the signal that arrived, if one did (a safe point)."""
    pending, _State.pending = _State.pending, None
    if pending is not None:
        raise pending


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Inside, a signal waits for `safe_point()` or for the end of the region."""
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
    if not _State.deferring:
        safe_point()


@contextmanager
def interruptible() -> Iterator[None]:
    """Inside: SIGINT and SIGTERM raise Interrupted (once). Elsewhere than the main thread
    (a test's worker), signals cannot be caught: nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {caught: signal.signal(caught, _interrupt) for caught in SIGNALS}
    try:
        yield
    finally:
        for caught, handler in previous.items():
            signal.signal(caught, handler)
        _State.pending = None
