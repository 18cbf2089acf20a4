"""What every snapshot source gives the rest of the program: a checked file under our name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from k3s_backup.formats.etcd_snapshot import SnapshotCheck
from k3s_backup.policy import naming


@dataclass(frozen=True)
class TakenSnapshot:
    """A snapshot a source just took, in snapshot_dir under our name, checked; its copies
    elsewhere are catalogue.inventory.Copy."""

    path: Path
    name: naming.SnapshotName
    check: SnapshotCheck
    detail: str = ""  # e.g. which endpoint served it


class Source(Protocol):
    kind: str
    snapshot_dir: Path

    def take(self, prefix: str) -> TakenSnapshot:
        """Take a snapshot named `<prefix>-<node>-<unix>[suffix]` in snapshot_dir, checked."""
        ...

    def delete(self, filename: str) -> str | None:
        """Delete one of our local snapshots; a warning if it had to fall back to unlinking."""
        ...
