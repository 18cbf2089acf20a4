"""Exit codes (a documented contract, like BorgBackup's) and the errors that map to them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every copy made and verified
    FAILED = 1  # the run failed; nothing was shipped
    USAGE = 2  # configuration or usage error
    PARTIAL = 3  # snapshot made, at least one target failed
    LOCKED = 4  # another run holds the lock


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
