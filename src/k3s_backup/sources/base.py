"""What every snapshot source gives the rest of the program: a checked file under our name (or
one whose check is left to its first reader: TakenSnapshot.check None)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from k3s_backup.formats.etcd_snapshot import SnapshotCheck
from k3s_backup.policy import naming


@dataclass(frozen=True)
class TakenSnapshot:
    """A snapshot a source just took, in snapshot_dir under our name, checked; its copies
    elsewhere are catalogue.inventory.Copy. `check` None: a plain etcd snapshot whose size and
    meta pages were checked, its SHA-256 trailer to be checked by whatever reads it first
    (formats.etcd_snapshot.TrailerCheck), so that it is read once."""

    path: Path
    name: naming.SnapshotName
    check: SnapshotCheck | None
    detail: str = ""  # e.g. which endpoint served it

    @property
    def size(self) -> int:
        """Bytes of the plain snapshot."""
        return self.check.size if self.check is not None else self.path.stat().st_size


class Source(Protocol):
    kind: str
    snapshot_dir: Path

    def take(self, prefix: str) -> TakenSnapshot:
        """Take a snapshot named `<prefix>-<node>-<unix>[suffix]` in snapshot_dir, checked (or
        with its trailer left to its first reader: TakenSnapshot.check)."""
        ...

    def delete(self, filename: str) -> str | None:
        """Delete one of our local snapshots; a warning if it had to fall back to unlinking."""
        ...
