"""The wall-clock limit of inspect, diff and drill (k3s_backup.plumbing.deadline)."""

from __future__ import annotations

import signal
import time

import pytest

from k3s_backup.plumbing.deadline import TimedOut, _current, shielded, time_limit


def _spin_until(condition, seconds: float = 30.0) -> None:
    """Burn CPU until `condition()` holds (the alarm arrives only between bytecodes)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the alarm never came"


def test_a_block_past_its_limit_raises_timed_out_and_restores_the_handler():
    before = signal.getsignal(signal.SIGALRM)
    expected = r"spin did not finish within 0.01 s \(--timeout\)"
    with pytest.raises(TimedOut, match=expected), time_limit(0.01, "spin"):
        _spin_until(lambda: False)
    assert signal.getsignal(signal.SIGALRM) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_an_alarm_during_a_shielded_cleanup_is_raised_once_it_is_done():
    cleaned = []
    with pytest.raises(TimedOut), time_limit(0.01, "spin"):
        with shielded():
            _spin_until(lambda: _current[-1].pending)
            cleaned.append(True)  # the cleanup ran to its end
        cleaned.append(False)  # never: the alarm is raised as the shield ends
    assert cleaned == [True]


def test_zero_means_no_limit():
    with time_limit(0, "spin"):
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
