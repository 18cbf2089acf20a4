"""The one retry loop: what heals is tried again after its wait, what does not is raised at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from k3s_backup.plumbing.retry import Retry


class Blip(Exception):
    pass


def failing(times: int, error: Exception) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def action() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= times:
            raise error
        return "done"

    return calls, action


def test_a_failure_that_heals_is_tried_again_after_its_wait_and_said_once() -> None:
    waits: list[float] = []
    said: list[tuple[str, float, int, int]] = []
    retry = Retry(
        3,
        lambda exc: isinstance(exc, Blip),
        lambda failed: 2.0**failed,
        waits.append,
        lambda exc, delay, attempt, attempts: said.append((str(exc), delay, attempt, attempts)),
    )
    calls, action = failing(2, Blip("cut"))
    assert retry(action) == "done"
    assert calls == [1, 2, 3] and retry.attempt == 3
    assert waits == [2.0, 4.0]
    assert said == [("cut", 2.0, 2, 4), ("cut", 4.0, 3, 4)]


def test_the_last_attempts_failure_is_raised_with_the_count() -> None:
    waits: list[float] = []
    retry = Retry(2, lambda exc: True, lambda failed: 1.0, waits.append)
    calls, action = failing(5, Blip("down"))
    with pytest.raises(Blip, match="down"):
        retry(action)
    assert calls == [1, 2, 3] and retry.attempt == 3
    assert waits == [1.0, 1.0]


def test_a_failure_that_does_not_heal_is_raised_at_once() -> None:
    waits: list[float] = []
    retry = Retry(5, lambda exc: isinstance(exc, Blip), lambda failed: 1.0, waits.append)
    calls, action = failing(1, ValueError("refused"))
    with pytest.raises(ValueError, match="refused"):
        retry(action)
    assert calls == [1] and retry.attempt == 1 and waits == []
