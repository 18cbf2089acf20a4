"""A snapshot of the cluster as it is now, for reading only (`extract --deleted-since live`).

Taken through the configured source, as `run` takes one, but into a private 0700 directory under
state_dir (not K3s's snapshot dir: it is no backup, nothing ships or rotates it), 0600, and
removed through the source afterwards (so K3s's own snapshot records follow) whatever happens.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from k3s_backup.config import Config
from k3s_backup.errors import ConfigError, SnapshotError
from k3s_backup.formats.etcd_snapshot import ZIP_ERRORS, check_file
from k3s_backup.policy import naming
from k3s_backup.sources.base import Source
from k3s_backup.sources.factory import choose_source, open_source

WORK_PREFIX = "live-"
Warn = Callable[[str], None]


def work_parent(config: Config) -> Path:
    """state_dir, on disk (the system's temporary dir is often a small tmpfs, in RAM)."""
    try:
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SnapshotError(
            f"cannot create {config.state_dir} to take a live snapshot in: {exc.strerror}"
            " (run as root?)"
        ) from None
    return config.state_dir


def _plain(path: Path, workdir: Path) -> Path:
    """The etcd database itself: a K3s `.zip` (etcd-snapshot-compress) unzipped beside it, 0600."""
    if not path.name.endswith(".zip"):
        return path
    try:
        with zipfile.ZipFile(path) as archive:
            [info] = archive.infolist()
            plain = workdir / "plain"
            fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with archive.open(info) as member, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)
    except (*ZIP_ERRORS, ValueError) as exc:
        raise SnapshotError(f"the live snapshot {path.name}: cannot unzip: {exc}") from None
    return plain


def _remove(source: Source, filename: str, warn: Warn) -> None:
    try:
        warning = source.delete(filename)
    except (SnapshotError, OSError) as exc:
        warning = f"cannot remove the live snapshot {filename}: {exc}"
    if warning:
        warn(warning)


@contextmanager
def live_snapshot(
    config: Config, environ: Mapping[str, str], now: datetime, warn: Warn
) -> Iterator[Path]:
    """The plain etcd database of a snapshot taken now; gone when the block ends."""
    kind = choose_source(config).kind
    if kind == "sqlite":
        raise ConfigError(
            "--deleted-since live needs an etcd datastore: this node's K3s keeps its state in"
            " SQLite, which extract does not read"
        )
    with tempfile.TemporaryDirectory(prefix=WORK_PREFIX, dir=work_parent(config)) as temp:
        workdir = Path(temp)
        source = open_source(config.model_copy(update={"snapshot_dir": workdir}), environ)
        taken = source.take(naming.snapshot_prefix(config.cluster_name, now))
        try:
            os.chmod(taken.path, 0o600)
            if taken.check is None:  # its trailer was left to its first reader: this one
                check_file(taken.path)
            yield _plain(taken.path, workdir)
        finally:
            _remove(source, taken.name.filename, warn)
