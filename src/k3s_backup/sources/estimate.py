"""How big one snapshot will be, before one is taken: what setup and doctor size a target's
free space against."""

from __future__ import annotations

from k3s_backup.catalogue.inventory import local_copies
from k3s_backup.config import Config


def snapshot_size_estimate(config: Config) -> int:
    """The size of one snapshot: our newest local one, else the live database file."""
    copies = local_copies(config.snapshot_dir, config.cluster_name)
    if copies:
        return copies[-1].size
    db = config.k3s.data_dir / "server" / "db"
    for candidate in (db / "etcd" / "member" / "snap" / "db", db / "state.db"):
        try:
            return candidate.stat().st_size
        except OSError:
            continue
    return 0
