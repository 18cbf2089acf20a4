"""SIGINT and SIGTERM become `Interrupted`, raised where the command can unwind cleanly, so it
reports where it was and its cleanups run (a temporary upload removed, a node started again).

Python's default turns SIGINT into KeyboardInterrupt (click prints "Aborted.", exit 1) and
leaves SIGTERM (what systemd sends on stop) to kill the process outright: no message, no state.

Inside a `SignalGuard`, a signal raises `Interrupted` at once, unless the command is deferring
(`guard.deferred()`, or `guard.defer()` from a point on): then it is noted (`on_deferred` says
so) and raised at the next safe point the command chooses (`check()` / `safe_point()`), or when
the deferred region ends. `run` defers while a target's connection is in use (raised inside
paramiko, the exception could land while it holds a lock of the connection, and removing the
temporary over that connection would wait on that lock forever); `restore` defers from its
first step that changes a node (stopping mid-step would leave a state nobody can describe).
Once a signal has been acted on, later ones are ignored, so the cleanup and the report finish
(systemd sends SIGKILL after its stop timeout).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

from k3s_backup.errors import Interrupted

HANDLED = (signal.SIGINT, signal.SIGTERM)


class SignalGuard:
    """A context manager: inside it (on the main thread, where handlers live), SIGINT and
    SIGTERM raise `Interrupted`. Elsewhere (a test's worker thread) nothing changes."""

    current: SignalGuard | None = None  # the innermost active guard, for `safe_point()`

    def __init__(self, on_deferred: Callable[[Interrupted], None] | None = None) -> None:
        self.on_deferred = on_deferred
        self.deferring = 0
        self.received: Interrupted | None = None
        self.acted = False
        self._previous: dict[int, object] = {}
        self._outer: SignalGuard | None = None

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        self._outer, SignalGuard.current = SignalGuard.current, self
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
        SignalGuard.current = self._outer

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.acted or self.received is not None:
            return  # the first one is being acted on: let its cleanup and report finish
        stop = Interrupted(signum)
        if not self.deferring:
            self.acted = True
            raise stop
        self.received = stop
        if self.on_deferred is not None:
            self.on_deferred(stop)

    def check(self) -> None:
        """A safe point: raise the signal that arrived while deferring, if one did."""
        if self.received is not None and not self.acted:
            self.acted = True
            raise self.received

    def defer(self) -> None:
        """From here to the guard's end, signals wait for `check()`."""
        self.deferring += 1

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Inside, a signal waits for `check()` or for the end of the region."""
        self.deferring += 1
        try:
            yield
        finally:
            self.deferring -= 1
        if not self.deferring:
            self.check()


def safe_point() -> None:
    """`check()` of the active guard, for code that has no handle on it (an upload's chunks)."""
    if SignalGuard.current is not None:
        SignalGuard.current.check()


@contextmanager
def signals_deferred() -> Iterator[None]:
    """`deferred()` of the active guard; without one, nothing to defer."""
    if SignalGuard.current is None:
        yield
        return
    with SignalGuard.current.deferred():
        yield
