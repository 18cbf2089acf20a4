"""run_command: a program's output and status; one error, with its message, for a program that
cannot be started or does not finish in time. start_command: the same, started now and waited
for later, or stopped unasked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from k3s_backup.plumbing.commands import CommandError, run_command, start_command


def test_output_status_input_and_environment_come_back() -> None:
    done = run_command(
        ["sh", "-c", 'read line; echo "$line $GREETING"; echo oops >&2; exit 3'],
        timeout=30,
        env={"PATH": os.environ["PATH"], "GREETING": "world"},
        input="hello\n",
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "hello world\n", "oops\n")


def test_stdin_is_never_the_terminal() -> None:
    assert run_command(["cat"], timeout=30).stdout == ""  # /dev/null: it does not wait


def test_a_missing_program_is_named() -> None:
    with pytest.raises(CommandError, match=r"^cannot run 'no-such-k3s': not found$") as caught:
        run_command(["no-such-k3s", "--version"], timeout=30)
    assert caught.value.not_found


def test_a_file_that_is_not_executable_is_named(tmp_path: Path) -> None:
    script = tmp_path / "k3s"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o600)
    with pytest.raises(CommandError, match=r"cannot run '.*k3s': Permission denied") as caught:
        run_command([str(script)], timeout=30)
    assert not caught.value.not_found


def test_a_program_that_does_not_finish_in_time_is_killed_and_named() -> None:
    with pytest.raises(CommandError, match=r"^`sleep 30` did not finish in 0 s$"):
        run_command(["sleep", "30"], timeout=0.2)


def test_output_that_is_not_utf8_is_replaced_not_raised() -> None:
    done = run_command(["printf", "\\377ok"], timeout=30)
    assert done.stdout == "\ufffdok"


def test_a_started_program_runs_while_the_caller_goes_on(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    started = start_command(
        ["sh", "-c", f'while [ ! -e {gate} ]; do sleep 0.01; done; echo "$GREETING"; exit 3'],
        timeout=30,
        env={"PATH": os.environ["PATH"], "GREETING": "ready"},
    )
    gate.touch()  # it waits for this: start_command returned before the program ended
    done = started.wait()
    assert (done.returncode, done.stdout, done.stderr) == (3, "ready\n", "")


def test_a_started_program_that_cannot_start_or_end_in_time_is_named() -> None:
    with pytest.raises(CommandError, match=r"^cannot run 'no-such-k3s': not found$"):
        start_command(["no-such-k3s", "--version"], timeout=30)
    with pytest.raises(CommandError, match=r"^`sleep 30` did not finish in 0 s$"):
        start_command(["sleep", "30"], timeout=0.2).wait()


def test_stopping_a_started_program_kills_it(tmp_path: Path) -> None:
    started = start_command(["sleep", "600"], timeout=600)
    started.stop()
    assert started.wait().returncode == -9  # killed, and reaped: nothing left running
