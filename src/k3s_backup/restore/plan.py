"""A restore's plan as data: the guide's numbered steps, each an action and the command an
operator types to do it by hand, and what has been done to this node so far. The command
prints the plan (dry run) or carries it out; after a failure the remaining steps' commands
are the way on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SERVICE = "k3s"
STOP_TIMEOUT = 120.0
RESET_TIMEOUT = 30 * 60.0
START_TIMEOUT = 10 * 60.0
POLL_INTERVAL = 0.5


class StepFailed(Exception):
    """A step of the restore failed; the message says what happened."""


@dataclass
class Step:
    number: str
    text: str
    action: Callable[[], None]
    command: str | None = None  # what an operator types to do this step by hand


@dataclass
class NodeState:
    """What has been done to this node so far: enough to say where it is and how to go back."""

    stopped: bool = False
    token_backup: Path | None = None
    token_written: bool = False
    reset_ran: bool = False
    old_data: Path | None = None  # etcd-old-<unix>, or the SQLite files moved aside
    started: bool = False
    remote_done: list[str] = field(default_factory=list)


def done() -> None:
    """A step already done before the plan is shown (the copy is fetched and verified)."""


def last_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join("    " + line for line in lines[-count:])


def letters(steps: list[Step]) -> list[str]:
    """`1a`, `1b`, `3`, ...: the guide's step numbers, lettered where one has several parts."""
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.number] = counts.get(step.number, 0) + 1
    seen: dict[str, int] = {}
    labels = []
    for step in steps:
        index = seen.get(step.number, 0)
        seen[step.number] = index + 1
        suffix = "abcdefghijklmnopqrstuvwxyz"[index] if counts[step.number] > 1 else ""
        labels.append(step.number + suffix)
    return labels
