"""Where sources other than K3s write a snapshot before it gets its final name.

Never K3s's snapshot dir itself: K3s treats every file there as a snapshot. The staging dir sits
beside it (same filesystem, so the final rename is atomic) and is private.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from k3s_backup.errors import SnapshotError
from k3s_backup.policy import naming

STAGING_NAME = ".k3s-backup-staging"


def staging_dir(snapshot_dir: Path) -> Path:
    return snapshot_dir.parent / STAGING_NAME


@contextmanager
def staged_file(snapshot_dir: Path) -> Iterator[Path]:
    """A private (0600) temporary path, removed afterwards unless it was renamed away."""
    directory = staging_dir(snapshot_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix="snapshot-")
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def publish(
    staged: Path, snapshot_dir: Path, cluster: str, prefix: str, node: str, suffix: str = ""
) -> tuple[Path, naming.SnapshotName]:
    """Give a checked staged file its final name in snapshot_dir (0700), atomically:
    `<prefix>-<node>-<unix>[suffix]`, as K3s names its own. Never over an existing file: a run
    in the same second (the prefix has seconds) made one; the unix time then moves on by one."""
    snapshot_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(staged, 0o600)
    unix = int(time.time())
    while True:
        filename = f"{prefix}-{node}-{unix}{suffix}"
        name = naming.parse(cluster, filename)
        if name is None:
            raise SnapshotError(f"node name {node!r} cannot be part of a file name")
        final = snapshot_dir / filename
        try:
            os.link(staged, final)  # unlike a rename, never replaces an existing file
        except FileExistsError:
            unix += 1
            continue
        os.unlink(staged)
        return final, name


def unlink_snapshot(snapshot_dir: Path, cluster: str, filename: str) -> None:
    if not naming.is_ours(cluster, filename):
        raise SnapshotError(f"refusing to delete {filename!r}: not a k3s-backup snapshot")
    (snapshot_dir / filename).unlink(missing_ok=True)
