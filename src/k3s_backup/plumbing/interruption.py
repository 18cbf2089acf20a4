"""SIGINT and SIGTERM during a command that changes a node (restore).

While nothing is changed yet, a signal stops the command at once (`Interrupted`). Once a step
that changes the node runs, stopping in the middle would leave a state nobody can describe (a
half-written datastore, a K3s stopped or not): the signal is remembered, said, and acted on at
the next point the command chooses (`check`), after the running step has finished.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A BaseException, like KeyboardInterrupt: no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by the signal


class SignalGuard:
    """A context manager; `deferring` chooses between stopping at once and stopping later."""

    def __init__(self, on_deferred: Callable[[str], None]) -> None:
        self.on_deferred = on_deferred
        self.deferring = False
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():  # handlers live there only
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
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

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if not self.deferring:
            raise Interrupted(signum)
        if self.received is None:
            self.received = signum
            self.on_deferred(signal.Signals(signum).name)

    def check(self) -> None:
        """Raise `Interrupted` if a signal came while deferring."""
        if self.received is not None:
            raise Interrupted(self.received)
