"""Snapshots taken by K3s itself: `k3s etcd-snapshot save`, found by our unique name prefix.

K3s can exit 0 without writing anything (see shared/notes/k3s-contract.md), so success is: exit 0,
exactly one file named `<prefix>-...` (plain or `.zip`, not `.part`), and a valid SHA-256 trailer:
a `.zip` is checked here, a plain file here by its size and bbolt meta pages, and its trailer as
it is first read (the run's first upload: backup/unchecked.py), so it is read once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from k3s_backup.errors import SnapshotError
from k3s_backup.formats.etcd_snapshot import check_before_reading
from k3s_backup.plumbing.commands import CommandError, Completed, run_command
from k3s_backup.policy import naming
from k3s_backup.sources.base import TakenSnapshot

SAVE_TIMEOUT = 30 * 60
DELETE_TIMEOUT = 5 * 60


def _last_lines(text: str, count: int = 5) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join("    " + line for line in lines[-count:])


class K3sSource:
    kind = "k3s"

    def __init__(
        self,
        k3s_bin: str,
        data_dir: Path,
        snapshot_dir: Path,
        cluster: str,
        environ: Mapping[str, str],
    ) -> None:
        self.k3s_bin = k3s_bin
        self.data_dir = data_dir
        self.snapshot_dir = snapshot_dir
        self.cluster = cluster
        self.environ = dict(environ)

    def _k3s(self, args: list[str], timeout: float) -> Completed:
        try:
            return run_command([self.k3s_bin, *args], timeout=timeout, env=self.environ)
        except CommandError as exc:
            fix = "; set [k3s] bin in the configuration to the k3s binary"
            fix += " (usually /usr/local/bin/k3s)"
            raise SnapshotError(f"{exc}{fix if exc.not_found else ''}") from None

    def take(self, prefix: str) -> TakenSnapshot:
        """Run `k3s etcd-snapshot save --name <prefix>` and return the file it made, checked as
        far as it can be without reading it whole (TakenSnapshot.check)."""
        before = self._versions()
        result = self._k3s(
            [
                "etcd-snapshot",
                "save",
                "--name",
                prefix,
                "--dir",
                str(self.snapshot_dir),
                "--data-dir",
                str(self.data_dir),
            ],
            SAVE_TIMEOUT,
        )
        if result.returncode != 0:
            raise SnapshotError(
                f"`k3s etcd-snapshot save` failed (exit {result.returncode}):\n"
                f"{_last_lines(result.stderr)}"
            )
        # New or rewritten since the call: a run in the same second (the stamp has seconds)
        # left a file with this prefix too, which must be neither taken nor confused with ours.
        after = self._versions()
        changed = [name for name, version in after.items() if before.get(name) != version]
        produced = naming.produced_by(prefix, self.cluster, changed)
        if len(produced) != 1:
            found = ", ".join(p.filename for p in produced) or "none"
            raise SnapshotError(
                f"`k3s etcd-snapshot save` exited 0 but did not produce exactly one snapshot"
                f" named {prefix}-* in {self.snapshot_dir} (found: {found}); K3s can fail"
                " silently: see `journalctl -u k3s` on this node"
            )
        path = self.snapshot_dir / produced[0].filename
        os.chmod(path, 0o600)  # older K3s made .zip files 0644; they hold every Secret
        return TakenSnapshot(path=path, name=produced[0], check=check_before_reading(path))

    def _versions(self) -> dict[str, tuple[int, int, int]]:
        """name -> (inode, size, mtime) of each file in the snapshot directory."""
        versions = {}
        for name in self.local_names():
            try:
                stat = os.stat(self.snapshot_dir / name)
            except FileNotFoundError:
                continue
            versions[name] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        return versions

    def local_names(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.snapshot_dir) if e.is_file()]
        except FileNotFoundError:
            return []

    def ours(self) -> list[naming.SnapshotName]:
        return naming.ours(self.cluster, self.local_names())

    def delete(self, filename: str) -> str | None:
        """Delete one of our snapshots through K3s (so its records follow), checking it is gone.

        Returns a warning when K3s did not remove it and the file was unlinked instead.
        """
        if not naming.is_ours(self.cluster, filename):
            raise SnapshotError(f"refusing to delete {filename!r}: not a k3s-backup snapshot")
        path = self.snapshot_dir / filename
        try:
            result = self._k3s(
                [
                    "etcd-snapshot",
                    "delete",
                    "--dir",
                    str(self.snapshot_dir),
                    "--data-dir",
                    str(self.data_dir),
                    filename,
                ],
                DELETE_TIMEOUT,
            )
            detail = f"exit {result.returncode}"
        except SnapshotError as exc:
            detail = str(exc)
        if not path.exists():
            return None
        path.unlink()
        return (
            f"`k3s etcd-snapshot delete {filename}` left the file ({detail}); removed it directly"
        )
