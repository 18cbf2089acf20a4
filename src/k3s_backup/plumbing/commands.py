"""One way to run a program: an argument list (never a shell), a timeout, an environment, the
output captured as text; a program that cannot be started or does not finish in time is one
error with a clear message (CommandError), never a FileNotFoundError or TimeoutExpired."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from k3s_backup.errors import BackupError

Completed = subprocess.CompletedProcess[str]


class CommandError(BackupError):
    """The program could not be started (`not_found`: no such file), or did not finish in
    time (it was killed)."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


def run_command(
    argv: Sequence[str | bytes],
    *,
    timeout: float | None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    new_session: bool = False,
) -> Completed:
    """Run `argv` to its end and return its exit status and output, whatever the status.
    `input` is its stdin (else /dev/null: a program never waits on our terminal);
    `new_session`: a terminal's Ctrl-C does not reach it."""
    words = [word if isinstance(word, str) else word.decode(errors="replace") for word in argv]
    try:
        return subprocess.run(
            list(argv),
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
            start_new_session=new_session,
        )
    except FileNotFoundError:
        raise CommandError(f"cannot run {words[0]!r}: not found", not_found=True) from None
    except OSError as exc:  # not executable, a directory, ...
        raise CommandError(f"cannot run {words[0]!r}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"`{' '.join(words)}` did not finish in {timeout:.0f} s") from None
