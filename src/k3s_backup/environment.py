"""The world a command runs in, injectable so the CLI runs in-process in tests (as httpie does)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TextIO


def _system_now() -> datetime:
    return datetime.now().astimezone()


@dataclass
class Environment:
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    now: Callable[[], datetime] = _system_now
    sleep: Callable[[float], None] = time.sleep  # waits between attempts, not synchronisation
    log_format: Literal["text", "json"] = "text"  # of log file lines (--log-format)

    @property
    def stdin_is_tty(self) -> bool:
        return self.stdin.isatty()

    @property
    def stdout_is_tty(self) -> bool:
        return self.stdout.isatty()
