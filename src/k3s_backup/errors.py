"""Exit codes (a documented contract, like BorgBackup's) and the errors that map to them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every copy made and verified
    FAILED = 1  # the run failed; nothing was shipped
    USAGE = 2  # configuration or usage error
    PARTIAL = 3  # snapshot made, at least one target failed
    LOCKED = 4  # another run holds the lock
    INTERRUPTED = 130  # Ctrl-C (SIGINT), 128 + 2 as shells report it
    TERMINATED = 143  # SIGTERM (systemd stopping the unit), 128 + 15


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
    """SIGINT or SIGTERM arrived (interrupts.py): a state to report, not an error of ours. A
    BaseException, as KeyboardInterrupt, so that no `except Exception` swallows it on its way
    up while every `finally` and `except BaseException` cleanup still runs."""

    def __init__(self, signal_name: str, exit_code: ExitCode) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = exit_code
