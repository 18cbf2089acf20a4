"""Run the CLI in-process with an injected environment; capture stdout, stderr and exit code."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from k3s_backup.cli import main
from k3s_backup.environment import Environment


class _Tty(io.StringIO):
    """Captured output; a terminal only when a test says so (`tty=True`)."""

    def __init__(self, initial: str = "", tty: bool = False) -> None:
        super().__init__(initial)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    lines: list[str] = field(default_factory=list)


def invoke(
    args: list[str],
    environ: Mapping[str, str] | None = None,
    stdin: str = "",
    now: Callable[[], datetime] | None = None,
    tty: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> Result:
    out, err = _Tty(tty=tty), _Tty(tty=tty)
    env = Environment(
        stdout=out,
        stderr=err,
        stdin=_Tty(stdin),
        environ=dict(environ if environ is not None else os.environ),
    )
    if now is not None:
        env.now = now
    if sleep is not None:
        env.sleep = sleep
    code = main(args, env)
    return Result(code, out.getvalue(), err.getvalue(), out.getvalue().splitlines())


def clock_at(when: datetime) -> Callable[[], datetime]:
    """A clock frozen at `when`, for runs that must happen at a given time."""
    return lambda: when
