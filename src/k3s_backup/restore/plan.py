"""A restore's plan as data: the guide's numbered steps, each a `Call` of plumbing/plan.py (the
one applier's steps) with the command an operator types to do it by hand, and what has been
done to this node so far. The applier prints the plan (dry run) or carries it out; after a
failure the remaining steps' commands are the way on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from k3s_backup.plumbing.plan import Call, Plan, Step

SERVICE = "k3s"
STOP_TIMEOUT = 120.0
RESET_TIMEOUT = 30 * 60.0
START_TIMEOUT = 10 * 60.0
POLL_INTERVAL = 0.5


def step(number: str, text: str, action: Callable[[], None], by_hand: str | None = None) -> Call:
    """Step `number` of the guide (lettered by `numbered`); its action says its own lines."""

    def run() -> str:
        action()
        return ""

    return Call("restore", "", text, number=number, by_hand=by_hand, action=run)


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


def letters(steps: Sequence[Step]) -> list[str]:
    """`1a`, `1b`, `3`, ...: the guide's step numbers, lettered where one has several parts."""
    counts: dict[str, int] = {}
    for each in steps:
        counts[each.number] = counts.get(each.number, 0) + 1
    seen: dict[str, int] = {}
    labels = []
    for each in steps:
        index = seen.get(each.number, 0)
        seen[each.number] = index + 1
        suffix = "abcdefghijklmnopqrstuvwxyz"[index] if counts[each.number] > 1 else ""
        labels.append(each.number + suffix)
    return labels


def numbered(steps: list[Step]) -> Plan:
    """The plan of `steps`, each numbered as the guide's: 1a, 1b, 2, ..."""
    return Plan([replace(s, number=n) for s, n in zip(steps, letters(steps), strict=True)])
