"""Exit codes (a documented contract, like BorgBackup's) and the errors that map to them."""

from __future__ import annotations

import signal
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every copy made and verified
    FAILED = 1  # the run failed; nothing was shipped
    USAGE = 2  # configuration or usage error
    PARTIAL = 3  # snapshot made, at least one target failed
    LOCKED = 4  # another run holds the lock
    INTERRUPTED = 130  # Ctrl-C (SIGINT), 128 + 2 as shells report it
    TERMINATED = 143  # SIGTERM (systemd stopping the unit), 128 + 15


_INTERRUPTED = (130, "interrupted by Ctrl-C (SIGINT); 143: by SIGTERM")
_HEALTH = (
    (0, "healthy (status: nothing WARN or FAIL; doctor: no FAIL)"),
    (1, "unhealthy"),
    (2, "configuration or usage error"),
)

# What each command's exit codes mean, shown in its --help (docs/commands.md says the same at
# length). Commands not named here use "run"'s meanings.
EXIT_CODES: dict[str, tuple[tuple[int, str], ...]] = {
    "run": (
        (0, "every copy made and verified"),
        (1, "failed (for run: nothing shipped)"),
        (2, "configuration or usage error"),
        (3, "partial: snapshot made, a target (or local rotation) failed"),
        (4, "another run holds the lock"),
        _INTERRUPTED,
    ),
    "setup": (
        (0, "set up (or already set up) and the first backup verified"),
        (1, "a step failed (connection, key refused, host key changed, first backup)"),
        (2, "usage error, or an answer is needed (host key) and stdin is not a terminal"),
        (3, "set up, but the first backup was partial"),
    ),
    "status": _HEALTH,
    "doctor": _HEALTH,
    "restore": (
        (0, "restored and this node reports Ready (or: the dry run's plan)"),
        (
            1,
            "nothing restored: no copy verifies, the pre-flight refused, or not confirmed;\n"
            "or a step failed (the message names it, the node's state and how to go back)",
        ),
        (
            2,
            "configuration or usage error (unknown or ambiguous NAME, unknown target; copies of\n"
            "several clusters and no NAME or --cluster with --yes; a question and stdin at its\n"
            "end, as under cron or </dev/null: run again with --yes)",
        ),
        (4, "a backup run holds the lock"),
        (
            130,
            "interrupted by SIGINT (143: SIGTERM); the message says where each node is and how\n"
            "to go on or back; the verified file is kept",
        ),
    ),
    "fetch": (
        (0, "FILE written: the plain snapshot, verified"),
        (1, "no copy of NAME verifies (each copy's problem is named)"),
        (2, "configuration or usage error (unknown or ambiguous NAME, FILE exists)"),
    ),
    "extract": (
        (0, "every selected object extracted (or applied)"),
        (
            1,
            "nothing extracted: no object matches, none could be read, a key is wrong, or\n"
            "--apply failed or refused",
        ),
        (2, "configuration or usage error"),
        (
            3,
            "partial: some objects written, the others named on stderr (not decodable, not\n"
            "decryptable)",
        ),
    ),
}


def exit_codes_text(command: str) -> str:
    """One line per code (continuation lines indented), as --help prints them."""
    lines = []
    for code, meaning in EXIT_CODES.get(command, EXIT_CODES["run"]):
        first, *rest = meaning.split("\n")
        lines.append(f"  {code}  {first}")
        lines += [f"  {' ' * len(str(code))}  {more}" for more in rest]
    return "\n".join(lines)


class BackupError(Exception):
    """An error with a message meant for the operator and the exit code it implies."""

    exit_code: ExitCode = ExitCode.FAILED


class ConfigError(BackupError):
    exit_code = ExitCode.USAGE


class LockHeldError(BackupError):
    exit_code = ExitCode.LOCKED


class SnapshotError(BackupError):
    """The snapshot could not be taken or did not pass its checks."""


class TargetError(BackupError):
    """A target could not store, read or verify a copy."""


class TargetUnreachable(TargetError):
    """The link to a target failed (refused, reset, cut, timed out): unlike a refusal by the
    target itself (a key, a permission, a full disk), a later attempt may well succeed."""


class HostKeyError(TargetError):
    """The backup host's key is unknown or changed: never accepted silently."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (plumbing/signals.py): a state to report, not an error of ours.
    A BaseException, as KeyboardInterrupt, so that no `except Exception` swallows it on its way
    up while every `finally` and `except BaseException` cleanup still runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        """SIGINT or SIGTERM."""
        return signal.Signals(self.signum).name

    @property
    def signal_name(self) -> str:
        """As an operator knows it: Ctrl-C for SIGINT."""
        return "Ctrl-C" if self.signum == signal.SIGINT else self.name

    @property
    def exit_code(self) -> ExitCode:
        """128 + the signal, as a shell reports a process the signal ended."""
        return ExitCode.INTERRUPTED if self.signum == signal.SIGINT else ExitCode.TERMINATED
