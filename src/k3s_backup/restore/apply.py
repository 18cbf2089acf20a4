"""Carry out a restore's plan step by step: a signal waits for the running step's end (K3s's
cluster-reset must not be cut mid-write), a failure or a signal stops there, and the recovery
brings back or describes every node with the exact commands to go on."""

from __future__ import annotations

from k3s_backup.errors import ExitCode, Interrupted
from k3s_backup.plumbing.signals import SignalGuard
from k3s_backup.restore.executor import Executor
from k3s_backup.restore.plan import Step, StepFailed, letters


def apply(executor: Executor, steps: list[Step], guard: SignalGuard, name: str) -> int:
    """The exit code of carrying out `steps` to restore snapshot `name`."""
    report = executor.report
    guard.defer()
    executor.guard = guard
    for index, (number, step) in enumerate(zip(letters(steps), steps, strict=True)):
        try:
            guard.check()
        except Interrupted as exc:
            report.error(f"interrupted by {exc.name} before step {number}")
            return _stop(executor, steps[index:], exc.exit_code, name)
        report.info(f"Step {number}: {step.text}")
        try:
            step.action()
        except Interrupted as exc:
            report.error(f"interrupted by {exc.name} during step {number}")
            return _stop(executor, steps[index:], exc.exit_code, name)
        except (StepFailed, OSError) as exc:
            report.error(f"step {number} failed: {exc}")
            return _stop(executor, steps[index:], ExitCode.FAILED, name)
    old = executor.state.old_data
    kept = f"; the previous data is kept in {old}" if old else ""
    report.info(f"Restore of {name} complete: this node is Ready{kept}")
    return ExitCode.OK


def _stop(executor: Executor, remaining: list[Step], code: int, name: str) -> int:
    """After a failure or a signal: bring back or describe every node; how to go on."""
    report = executor.report
    report.error(executor.recover())
    if executor.data_untouched:
        report.error(f"To restore after all: k3s-backup restore {name}")
    else:
        commands = [step.command for step in remaining if step.command]
        if commands:
            report.error("To go on with the restore, run in order: " + "; ".join(commands))
    report.error(f"The verified snapshot is kept at {executor.snapshot}")
    return code
