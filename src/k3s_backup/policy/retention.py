"""Which copies to keep: a pure function of names and counts (BorgBackup's prune as a function)."""

from __future__ import annotations

from dataclasses import dataclass

from k3s_backup.policy.naming import SnapshotName


@dataclass(frozen=True)
class RetentionPlan:
    keep: list[SnapshotName]
    remove: list[SnapshotName]


def plan_keep_last(
    snapshots: list[SnapshotName], keep: int, protect: frozenset[str] = frozenset()
) -> RetentionPlan:
    """Keep the newest `keep` snapshots (by the times in their names) and every protected one.

    `protect` holds file names that must survive whatever their timestamp, e.g. the copy this run
    just made (a clock that jumped backwards can give it an older-looking name).
    """
    if keep < 1:
        raise ValueError("keep must be at least 1: rotation never deletes the newest copy")
    newest_first = sorted(snapshots, reverse=True)
    kept = newest_first[:keep]
    removed = [s for s in newest_first[keep:] if s.filename not in protect]
    kept += [s for s in newest_first[keep:] if s.filename in protect]
    return RetentionPlan(keep=sorted(kept), remove=sorted(removed))
