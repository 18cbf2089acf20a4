"""Plan, then apply: a command that changes the system first builds its changes as data (a
Plan of Steps), then ONE applier either prints each as "would ..." (`--dry-run`) or carries it
out, saying each as it is done. restore's numbered plan is applied by it too; prune's deletions
are restic's `dryrun` backend as data.

A step says what it changes in words: `line` completes "would ..." ("remove /etc/cron.d/x"),
`done` is the line once it happened ("removed /etc/cron.d/x"). Files and commands are plain
data the applier knows how to carry out; any other change (a key generated, a copy deleted on a
target) is a `Call`. A note changes nothing: it is said as it is, in both modes.

A step numbered as in a guide (restore's "1a") is listed as "  1a. ..." in a dry run and said as
"Step 1a: ..." as it starts in a real one: a long step (K3s's cluster-reset) is seen running.
Its `by_hand` is what an operator types to make it by hand: after a failure, those of the steps
not done (`plan.steps[plan.done:]`) are the way on.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from k3s_backup.errors import BackupError
from k3s_backup.plumbing.atomic import write_atomic
from k3s_backup.plumbing.commands import CommandError, run_command

Say = Callable[[str], object]


class StepFailed(BackupError):
    """A step that must succeed did not; the message says which and why."""


@dataclass(frozen=True)
class Step:
    what: str  # the kind of change: "write", "remove", "run", "delete", a command's own word
    target: str  # what it changes: a path, a command line, a copy's name
    line: str  # the change in words, completing "would ...": "remove /etc/cron.d/k3s-backup"
    done: str = ""  # the line once done [default: the line]
    show: tuple[str, ...] = ()  # printed below the line in a dry run (a file's content)
    skipped: str | None = None  # why this change is not made in either mode (said as such)
    number: str = ""  # its number in a plan numbered as a guide's: "1a"
    by_hand: str | None = None  # the command an operator types to make this change by hand

    def perform(self, environ: Mapping[str, str]) -> str | None:
        """Carry the change out; a line that says more than `done`, or None."""
        raise NotImplementedError


NOTE = "note"


def note(line: str) -> Step:
    """No change: what the command found or decided, said as it is in both modes."""
    return Step(NOTE, "", line)


@dataclass(frozen=True)
class WriteFile(Step):
    content: str = ""
    mode: int = 0o644
    parent_mode: int = 0o777  # of a missing directory, before the umask (/etc/cron.d: 0755)

    def perform(self, environ: Mapping[str, str]) -> str | None:
        path = Path(self.target)
        write_atomic(path, self.content.encode("utf-8"), self.mode, parent_mode=self.parent_mode)
        return None


@dataclass(frozen=True)
class RemoveFile(Step):
    def perform(self, environ: Mapping[str, str]) -> str | None:
        Path(self.target).unlink()
        return None


@dataclass(frozen=True)
class RunCommand(Step):
    argv: tuple[str, ...] = ()
    must_succeed: bool = True  # else a failure is reported and the plan goes on
    timeout: float | None = None  # seconds; a command still running then is a failure

    def perform(self, environ: Mapping[str, str]) -> str | None:
        try:
            ran = run_command(list(self.argv), timeout=self.timeout, env=environ)
        except CommandError as exc:
            if self.must_succeed:
                raise StepFailed(str(exc)) from None
            return f"{self.done}: {exc}"
        if ran.returncode == 0:
            return None
        said = ran.stderr.strip()
        if self.must_succeed:
            raise StepFailed(f"`{self.target}` failed: {said or f'exit {ran.returncode}'}")
        return f"{self.done}: exit {ran.returncode}" + (f": {said}" if said else "")


@dataclass(frozen=True)
class Call(Step):
    """A change only its command knows how to make; `action` returns a line that says more
    than `done`, None to say `done`, or "" when it said its own lines."""

    action: Callable[[], str | None] = field(default=lambda: None, compare=False)

    def perform(self, environ: Mapping[str, str]) -> str | None:
        return self.action()


def write_file(
    path: Path, content: str, mode: int, line: str, done: str, shown: str, parent_mode: int = 0o777
) -> WriteFile:
    """A file written whole, atomically (0644 for system files, 0600 for ours), its text
    shown in a dry run as `shown` (which may differ: secrets redacted)."""
    lines = (f"--- {path} ---", *(f"| {text}" for text in shown.splitlines()))
    return WriteFile(
        "write", str(path), line, done, lines, content=content, mode=mode, parent_mode=parent_mode
    )


def remove_file(path: Path, why: str = "") -> RemoveFile:
    suffix = f" ({why})" if why else ""
    return RemoveFile("remove", str(path), f"remove {path}{suffix}", f"removed {path}{suffix}")


def run_step(
    argv: Sequence[str],
    must_succeed: bool = True,
    skipped: str | None = None,
    timeout: float | None = None,
) -> RunCommand:
    shown = shlex.join(argv)
    return RunCommand(
        "run",
        shown,
        f"run `{shown}`",
        f"ran `{shown}`",
        skipped=skipped,
        argv=tuple(argv),
        must_succeed=must_succeed,
        timeout=timeout,
    )


@dataclass
class Plan:
    """The steps in order; `done` counts those carried out, so a plan applied again after a
    failure (a new connection) goes on after the last step done and says each step once."""

    steps: list[Step] = field(default_factory=list)
    done: int = 0

    def add(self, *steps: Step) -> None:
        self.steps.extend(steps)

    @property
    def changes(self) -> list[Step]:
        """The steps that change something (not notes, not skipped)."""
        return [s for s in self.steps if s.what != NOTE and s.skipped is None]


def apply(
    plan: Plan,
    dry_run: bool,
    environ: Mapping[str, str],
    say: Say,
    notes_only: bool = False,
    between: Callable[[], None] | None = None,
) -> list[Step]:
    """Print (`dry_run`) or carry out each step not done yet, in order, each said as it goes;
    the steps that changed something. A failure (StepFailed, OSError, a target's error)
    propagates after the steps before it were said, `plan.done` at the failed step. `notes_only`:
    stop at the first change (what was found is said before the connection the changes need is
    opened). `between` runs before each step: what it raises (restore's deferred signal) stops
    the plan there, before that step starts."""
    changed: list[Step] = []
    while plan.done < len(plan.steps):
        step = plan.steps[plan.done]
        if notes_only and step.what != NOTE:
            break
        if between is not None:
            between()
        if step.what == NOTE:
            say(step.line)
        elif step.skipped is not None:
            say(f"would {step.line} ({step.skipped}: skipped)")
        elif dry_run:
            say(f"  {step.number}. {step.line}" if step.number else f"would {step.line}")
            for line in step.show:
                say(line)
        else:
            if step.number:
                say(f"Step {step.number}: {step.line}")
            said = step.perform(environ)  # "": the step said its own lines
            if said != "":
                say(said or step.done or step.line)
            changed.append(step)
        plan.done += 1
    return changed
