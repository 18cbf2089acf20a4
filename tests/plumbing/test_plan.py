"""The one applier: a dry run says every change as "would ..." and makes none; a real run makes
each and says it as it goes; a plan applied again after a failure goes on where it stopped."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from k3s_backup.plumbing.plan import (
    Call,
    Plan,
    StepFailed,
    apply,
    note,
    remove_file,
    run_step,
    write_file,
)

ENV = {"PATH": os.environ["PATH"]}


def calling(calls: list[str], what: str) -> Callable[[], str | None]:
    def call() -> str | None:
        calls.append(what)
        return None

    return call


def a_plan(tmp_path: Path, calls: list[str]) -> Plan:
    old = tmp_path / "old"
    old.write_text("stale\n")
    new = tmp_path / "etc" / "new"
    plan = Plan()
    plan.add(
        note("found: old"),
        write_file(new, "secret=1\n", 0o600, f"create {new} (0600):", f"created {new}", "secret=…"),
        remove_file(old, "not in this schedule"),
        Call("greet", "x", "greet x", "greeted x", action=calling(calls, "x")),
        run_step(["true"], skipped="under --root /r"),
    )
    return plan


def test_a_dry_run_says_every_change_and_makes_none(tmp_path: Path) -> None:
    calls: list[str] = []
    lines: list[str] = []
    changed = apply(a_plan(tmp_path, calls), True, ENV, lines.append)
    new = tmp_path / "etc" / "new"
    assert lines == [
        "found: old",
        f"would create {new} (0600):",
        f"--- {new} ---",
        "| secret=…",
        f"would remove {tmp_path / 'old'} (not in this schedule)",
        "would greet x",
        "would run `true` (under --root /r: skipped)",
    ]
    assert changed == [] and calls == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_a_real_run_makes_each_change_and_says_it(tmp_path: Path) -> None:
    calls: list[str] = []
    lines: list[str] = []
    changed = apply(a_plan(tmp_path, calls), False, ENV, lines.append)
    new = tmp_path / "etc" / "new"
    assert lines[1:4] == [
        f"created {new}",
        f"removed {tmp_path / 'old'} (not in this schedule)",
        "greeted x",
    ]
    assert [s.what for s in changed] == ["write", "remove", "greet"]
    assert new.read_text() == "secret=1\n" and new.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "old").exists() and calls == ["x"]


def test_a_failed_command_stops_the_plan_and_again_goes_on_after_the_last_step_done() -> None:
    calls: list[str] = []
    failing = [False, True]  # popped from the end: the first call fails

    def flaky() -> str | None:
        if failing.pop():
            raise OSError("link cut")
        calls.append("second")
        return None

    plan = Plan()
    plan.add(
        Call("a", "a", "do a", "did a", action=calling(calls, "first")),
        Call("b", "b", "do b", "did b", action=flaky),
    )
    lines: list[str] = []
    with pytest.raises(OSError):
        apply(plan, False, ENV, lines.append)
    apply(plan, False, ENV, lines.append)
    assert calls == ["first", "second"] and lines == ["did a", "did b"]  # each said once


def test_a_command_that_must_succeed_fails_with_its_error_one_that_need_not_is_reported() -> None:
    with pytest.raises(StepFailed, match=r"^`sh -c 'echo no >&2; exit 3'` failed: no$"):
        apply(Plan([run_step(["sh", "-c", "echo no >&2; exit 3"])]), False, ENV, print)
    lines: list[str] = []
    apply(Plan([run_step(["sh", "-c", "exit 4"], must_succeed=False)]), False, ENV, lines.append)
    assert lines == ["ran `sh -c 'exit 4'`: exit 4"]


def test_notes_only_says_what_was_found_and_stops_before_the_first_change(tmp_path: Path) -> None:
    calls: list[str] = []
    plan = a_plan(tmp_path, calls)
    lines: list[str] = []
    apply(plan, False, ENV, lines.append, notes_only=True)
    assert lines == ["found: old"] and plan.done == 1
    apply(plan, False, ENV, lines.append)
    assert lines[1] == f"created {tmp_path / 'etc' / 'new'}" and calls == ["x"]


def numbered_plan(lines: list[str]) -> Plan:
    """Two steps numbered as a guide's, each saying its own line as it runs."""

    def act(what: str) -> Callable[[], str | None]:
        def call() -> str | None:
            lines.append(f"doing {what}")
            return ""  # said its own line

        return call

    return Plan(
        [
            Call("restore", "", "stop", number="1a", by_hand="stop it", action=act("stop")),
            Call("restore", "", "reset", number="1b", by_hand="reset it", action=act("reset")),
        ]
    )


def test_a_numbered_plan_is_listed_by_number_and_each_step_said_before_it_runs() -> None:
    lines: list[str] = []
    apply(numbered_plan(lines), True, ENV, lines.append)
    assert lines == ["  1a. stop", "  1b. reset"]
    lines.clear()
    apply(numbered_plan(lines), False, ENV, lines.append)
    assert lines == ["Step 1a: stop", "doing stop", "Step 1b: reset", "doing reset"]


def test_what_between_raises_stops_the_plan_before_the_next_step_starts() -> None:
    lines: list[str] = []
    plan = numbered_plan(lines)
    calls = [True, False]  # popped from the end: the first check passes, the second stops

    def between() -> None:
        if calls.pop():
            raise RuntimeError("signal")

    with pytest.raises(RuntimeError, match="signal"):
        apply(plan, False, ENV, lines.append, between=between)
    assert lines == ["Step 1a: stop", "doing stop"]  # 1b was neither said nor run
    assert plan.done == 1 and [s.by_hand for s in plan.steps[plan.done :]] == ["reset it"]


def test_a_failed_step_leaves_done_at_it_so_the_remaining_steps_are_the_way_on() -> None:
    def cut() -> str | None:
        raise StepFailed("link cut")

    plan = Plan(
        [
            Call("restore", "", "stop", number="1", by_hand="stop it"),
            Call("restore", "", "reset", number="2", by_hand="reset it", action=cut),
            Call("restore", "", "start", number="3", by_hand="start it"),
        ]
    )
    lines: list[str] = []
    with pytest.raises(StepFailed, match="link cut"):
        apply(plan, False, ENV, lines.append)
    assert lines == ["Step 1: stop", "stop", "Step 2: reset"]
    assert [s.by_hand for s in plan.steps[plan.done :]] == ["reset it", "start it"]
