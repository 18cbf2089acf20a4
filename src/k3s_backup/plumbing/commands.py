"""One way to run a program: an argument list (never a shell), a timeout, an environment, the
output captured as text; a program that cannot be started or does not finish in time is one
error with a clear message (CommandError), never a FileNotFoundError or TimeoutExpired.
`start_command` starts one to be waited for later, while the caller goes on."""

from __future__ import annotations

import subprocess
import time
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
    except OSError as exc:
        raise _not_started(words, exc) from None
    except subprocess.TimeoutExpired:
        raise _too_long(words, timeout) from None


def _not_started(words: list[str], exc: OSError) -> CommandError:
    if isinstance(exc, FileNotFoundError):
        return CommandError(f"cannot run {words[0]!r}: not found", not_found=True)
    return CommandError(f"cannot run {words[0]!r}: {exc.strerror or exc}")  # not executable...


def _too_long(words: list[str], timeout: float | None) -> CommandError:
    return CommandError(f"`{' '.join(words)}` did not finish in {timeout or 0:.0f} s")


class Running:
    """A program `start_command` started: it runs while the caller goes on."""

    def __init__(self, proc: subprocess.Popen[str], words: list[str], timeout: float) -> None:
        self._proc = proc
        self._words = words
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout

    def wait(self) -> Completed:
        """Its exit status and output, whatever the status; CommandError, and killed, when it
        has not ended `timeout` seconds after it was started."""
        left = max(0.0, self._deadline - time.monotonic())
        try:
            stdout, stderr = self._proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            self.stop()
            raise _too_long(self._words, self._timeout) from None
        except BaseException:  # a signal meanwhile: it must not outlive us
            self.stop()
            raise
        return subprocess.CompletedProcess(self._proc.args, self._proc.returncode, stdout, stderr)

    def stop(self) -> None:
        """Kill it if it still runs (its answer is no longer wanted) and reap it."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()


def start_command(
    argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
) -> Running:
    """Start `argv` (stdin /dev/null, output captured as text) and return at once; `wait()`
    gives what `run_command` would have, `stop()` ends it unasked. CommandError if it cannot
    be started."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=None if env is None else dict(env),
        )
    except OSError as exc:
        raise _not_started(list(argv), exc) from None
    return Running(proc, list(argv), timeout)
