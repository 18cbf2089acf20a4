"""Which local snapshots have not left the node yet, and how long rotation keeps them: pure.

What a target holds of this node's snapshots is known by one name: that of the newest verified
copy it was last seen holding (`held_through`). A run that reaches a target
ships it every local snapshot it lacks, oldest first, so it holds every local one up to there;
a target never reached holds nothing. Copies a target's own retention removed later were held:
they are not protected here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from k3s_backup.policy.naming import SnapshotName, parse
from k3s_backup.policy.retention import GfsRules, Reason, plan_gfs

HeldThrough = Mapping[str, SnapshotName | None]  # target -> its newest copy, None: never reached


def _held(name: SnapshotName, through: SnapshotName | None) -> bool:
    """By the times in the names (a stored name adds suffixes to the same times)."""
    return through is not None and (name.unix, name.stamp) <= (through.unix, through.stamp)


def lacking(local: list[SnapshotName], held_through: HeldThrough) -> list[SnapshotName]:
    """The local snapshots some target still lacks."""
    return [n for n in local if not all(_held(n, t) for t in held_through.values())]


def lacked_by(name: SnapshotName, held_through: HeldThrough) -> list[str]:
    """The targets that still lack a local snapshot."""
    return [target for target, through in held_through.items() if not _held(name, through)]


def lacking_reason(name: SnapshotName, held_through: HeldThrough) -> Reason:
    """Why rotation keeps a local snapshot beyond keep_local, in words."""
    targets = ", ".join(lacked_by(name, held_through)) or "a target"
    return Reason("lacking", True, "a target lacks it", f"{targets} still lacks it")


def only_here(local: list[SnapshotName], held_through: HeldThrough) -> list[SnapshotName]:
    """The local snapshots no target holds: they exist only on this node."""
    return [n for n in local if not any(_held(n, t) for t in held_through.values())]


def remembered(state: Mapping[str, Any], target: str, cluster: str) -> SnapshotName | None:
    """`held_through` of a target this run could not read: from the last recorded run that
    reached it (the last run, else the last success), None if none did."""
    for key in ("last_run", "last_success"):
        run = state.get(key)
        entry = (run.get("targets") or {}).get(target) if isinstance(run, dict) else None
        if isinstance(entry, dict) and entry.get("ok"):
            newest = entry.get("newest")
            return parse(cluster, newest) if isinstance(newest, str) else None
    return None


@dataclass(frozen=True)
class Unshipped:
    keep: frozenset[str]  # file names rotation must keep beyond keep_local: a target lacks them
    dropped: list[SnapshotName]  # lacked too, but deleted to leave room for the next snapshot


def protect_unshipped(
    local: list[SnapshotName],
    sizes: Mapping[str, int],
    rules: GfsRules,
    held_through: HeldThrough,
    free: int,
    need: int,
) -> Unshipped:
    """Keep every local snapshot some target lacks, beyond what `rules` keep, as long as the
    snapshot dir keeps `need` bytes free (what one more snapshot takes); below that, the oldest
    of them go first until it does."""
    would_remove = set(plan_gfs(local, rules).remove)
    at_risk = sorted(n for n in lacking(local, held_through) if n in would_remove)
    dropped: list[SnapshotName] = []
    for name in at_risk:
        if free >= need:
            break
        dropped.append(name)
        free += sizes.get(name.filename, 0)
    keep = frozenset(n.filename for n in at_risk if n not in dropped)
    return Unshipped(keep=keep, dropped=dropped)
