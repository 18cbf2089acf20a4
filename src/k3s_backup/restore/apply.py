"""Carry out a restore's plan through the one applier (plumbing/plan.py), step by step: a signal
waits for the running step's end (K3s's cluster-reset must not be cut mid-write), a failure or a
signal stops there, and the recovery brings back or describes every node with the exact
commands to go on."""

from __future__ import annotations

from k3s_backup.errors import ExitCode, Interrupted
from k3s_backup.plumbing import plan as applier
from k3s_backup.plumbing.plan import Plan, Say, StepFailed
from k3s_backup.plumbing.signals import SignalGuard
from k3s_backup.restore.executor import Executor


def show(plan: Plan, say: Say) -> None:
    """The numbered plan, as the applier's dry run says it (`restore --dry-run`, and before the
    confirmation); not counted done: the same plan then runs once confirmed."""
    applier.apply(Plan(plan.steps), True, {}, say)


def apply(executor: Executor, plan: Plan, guard: SignalGuard, name: str) -> int:
    """The exit code of carrying out `plan` to restore snapshot `name`."""
    report = executor.report
    guard.defer()
    executor.guard = guard
    started = False  # whether the step at plan.done began (else a signal stopped before it)

    def safe_point() -> None:  # between two steps: a signal that waited stops the restore here
        nonlocal started
        started = False
        guard.check()
        started = True

    try:
        applier.apply(plan, False, executor.env.environ, report.info, between=safe_point)
    except Interrupted as exc:
        when = "during" if started else "before"
        report.error(f"interrupted by {exc.name} {when} step {plan.steps[plan.done].number}")
        return _stop(executor, plan, exc.exit_code, name)
    except (StepFailed, OSError) as exc:
        report.error(f"step {plan.steps[plan.done].number} failed: {exc}")
        return _stop(executor, plan, ExitCode.FAILED, name)
    old = executor.state.old_data
    kept = f"; the previous data is kept in {old}" if old else ""
    report.info(f"Restore of {name} complete: this node is Ready{kept}")
    return ExitCode.OK


def _stop(executor: Executor, plan: Plan, code: int, name: str) -> int:
    """After a failure or a signal: bring back or describe every node; how to go on."""
    report = executor.report
    report.error(executor.recover())
    if executor.data_untouched:
        report.error(f"To restore after all: k3s-backup restore {name}")
    else:
        commands = [step.by_hand for step in plan.steps[plan.done :] if step.by_hand]
        if commands:
            report.error("To go on with the restore, run in order: " + "; ".join(commands))
    report.error(f"The verified snapshot is kept at {executor.snapshot}")
    return code
