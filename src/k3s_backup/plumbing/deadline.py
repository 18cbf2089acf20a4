"""A wall-clock limit for commands that read what others wrote (inspect, diff, drill).

Every reader is bounded by the size of its input, but a huge or slow-to-read copy, a stalled
disk or a reader bug must still end with a message, not a process that never returns: SIGALRM
raises TimedOut in the main thread, so `finally` blocks still remove temporaries and stop the
throwaway etcd, and subprocess.run kills the child it was waiting for.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from k3s_backup.errors import BackupError

INSPECT_TIMEOUT = 1800.0  # seconds: reading a multi-GiB snapshot twice (diff) fits easily
DRILL_TIMEOUT = 3600.0  # a fetch, a restore and a start of etcd on a large database


class TimedOut(BackupError):
    """The command ran past its --timeout."""


class _Alarm:
    """The limit in force: a cleanup in `shielded()` finishes before the alarm is raised."""

    def __init__(self, seconds: float, what: str) -> None:
        self.message = (
            f"{what} did not finish within {seconds:g} s (--timeout): the copy may be"
            " crafted, or the disk or the link very slow"
        )
        self.shields = 0
        self.pending = False

    def fire(self, _signum: int, _frame: FrameType | None) -> None:
        if self.shields:
            self.pending = True
            return
        raise TimedOut(self.message)


_current: list[_Alarm] = []


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise TimedOut in the block after `seconds` (0: no limit). Only the main thread gets
    signals; elsewhere (an embedding program's worker) the block runs without a limit."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    alarm = _Alarm(seconds, what)
    previous = signal.signal(signal.SIGALRM, alarm.fire)
    _current.append(alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _current.remove(alarm)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def shielded() -> Iterator[None]:
    """A cleanup the limit must not cut short (stopping the throwaway etcd): an alarm that
    comes during it is raised when it is done."""
    alarm = _current[-1] if _current else None
    if alarm is None:
        yield
        return
    alarm.shields += 1
    try:
        yield
    finally:
        alarm.shields -= 1
    if alarm.pending and not alarm.shields:
        alarm.pending = False
        raise TimedOut(alarm.message)
