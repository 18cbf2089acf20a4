"""Seconds a run spends in each of its phases (the run report's `phases`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

PHASES = ("snapshot", "upload", "verify", "rotate")


class Phases:
    """Seconds spent in each phase of a run, summed over targets. `upload` includes encoding
    (it happens while uploading); `verify` is the time a target's `put` takes after the
    snapshot was read to its end (the last bytes sent, re-hash where stored, rename).
    Connecting, listing and the small manifest and bundle uploads count only in the total."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.add(phase, time.monotonic() - started)

    def rounded(self) -> dict[str, float]:
        return {phase: round(seconds, 3) for phase, seconds in self.seconds.items()}
