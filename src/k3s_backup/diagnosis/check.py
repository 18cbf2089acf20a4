"""One check's result: its name, OK / WARN / FAIL, what it saw and the command that fixes it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Check:
    name: str
    status: str
    saw: str
    fix: str | None = None


Checks = Iterator[Check]
