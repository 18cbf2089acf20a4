"""A recovery key for configurations the tests write by hand (the lab makes its own)."""

from __future__ import annotations

from pathlib import Path

from k3s_backup.catalogue import recovery_key


def recovery_key_file(directory: Path) -> Path:
    """A new cluster recovery key in `directory`, as `setup` would make it."""
    path = directory / "recovery.key"
    if path.exists():  # one cluster, one key
        return path
    recovery_key.save(path, recovery_key.decode(recovery_key.generate()))
    return path
