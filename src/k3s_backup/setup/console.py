"""What setup says and asks, and its changes carried out (or, in a dry run, only said) through
the one applier (plumbing/plan.py): every step's output is indented under its title."""

from __future__ import annotations

from dataclasses import dataclass, field

from k3s_backup.environment import Environment
from k3s_backup.plumbing.plan import Plan, RemoveFile, Step, WriteFile, apply
from k3s_backup.setup.values import STEPS, SetupOptions


@dataclass
class Console:
    options: SetupOptions
    env: Environment
    changed: list[str] = field(default_factory=list)  # what this setup did, for "done before"

    def say(self, text: str) -> None:
        self.env.stdout.write(text + "\n")

    def step(self, number: int, title: str) -> None:
        self.say(f"[{number}/{STEPS}] {title}")

    def result(self, text: str) -> None:
        self.say(f"      {text}")

    def ask(self, question: str) -> str | None:
        """A line from a terminal; None when stdin is not one or is closed (never guess)."""
        if not self.env.stdin_is_tty:
            return None
        self.env.stdout.write(question)
        self.env.stdout.flush()
        line = self.env.stdin.readline()
        return line.strip() if line else None  # "" is end of input (Ctrl-D), "\n" is Enter

    def apply(self, *steps: Step) -> list[Step]:
        """Carry the steps out, or with --dry-run say each as "would ..."; those done. Files
        written or removed count as changed here; any other step records its own."""
        done = apply(Plan(list(steps)), self.options.dry_run, self.env.environ, self.result)
        self.changed += [s.target for s in done if isinstance(s, WriteFile | RemoveFile)]
        return done
