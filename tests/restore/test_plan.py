"""The plan's step labels: the guide's numbers, lettered where one step has several parts."""

from __future__ import annotations

from k3s_backup.restore.plan import done, letters, step


def test_steps_with_several_parts_are_lettered_the_others_not() -> None:
    numbers = ["1", "1", "1", "2", "3", "4", "4", "5"]
    steps = [step(number, f"step {number}", done) for number in numbers]
    assert letters(steps) == ["1a", "1b", "1c", "2", "3", "4a", "4b", "5"]
