"""One signal mechanism for every command: real signals sent to this process."""

from __future__ import annotations

import os
import signal

import pytest

from k3s_backup.errors import ExitCode, Interrupted
from k3s_backup.plumbing.signals import SignalGuard, safe_point, signals_deferred


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # handlers run on the main thread before the next bytecode


def test_outside_a_deferred_region_a_signal_stops_at_once_with_its_exit_code():
    with pytest.raises(Interrupted) as stopped, SignalGuard():
        _send(signal.SIGTERM)
        pytest.fail("not interrupted")
    assert stopped.value.exit_code == ExitCode.TERMINATED
    assert stopped.value.name == "SIGTERM"


def test_a_deferred_signal_waits_for_the_safe_point_and_is_said_once():
    said: list[str] = []
    reached = []
    with pytest.raises(Interrupted) as stopped, SignalGuard(lambda s: said.append(s.name)):
        with signals_deferred():
            _send(signal.SIGINT)
            _send(signal.SIGINT)  # a second Ctrl-C while the first waits: ignored
            reached.append("the step finished")
        pytest.fail("not raised at the end of the deferred region")
    assert reached == ["the step finished"]
    assert said == ["SIGINT"]
    assert stopped.value.exit_code == ExitCode.INTERRUPTED
    assert stopped.value.signal_name == "Ctrl-C"


def test_once_acted_on_later_signals_let_the_cleanup_finish():
    cleaned = []
    with pytest.raises(Interrupted), SignalGuard() as guard:
        guard.defer()
        _send(signal.SIGTERM)
        try:
            safe_point()
        finally:
            _send(signal.SIGINT)  # during the cleanup: must not cut it short
            cleaned.append(True)
    assert cleaned == [True]


def test_handlers_are_given_back_when_the_guard_ends():
    before = signal.getsignal(signal.SIGINT)
    with SignalGuard():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
