"""What the backup host's own rotation removes from a directory: pure, no I/O.

The host sees file names and, for each copy, the cluster identity its manifest claims (the host
holds no recovery key, so it cannot authenticate a manifest: see "Compromised node" in
docs/reliability.md). Every claim only ever makes it keep more: the lineage (identity) of the
newest copy of the cluster is rotated, per node as on the node (catalogue/rotation.py); copies
of every other lineage are kept, as the node keeps another cluster's copies.

The times are the host's own: a copy's receive time (the mtime the service's write gave it; the
node has no request that sets one), not the time its name claims, orders the copies and fills
the GFS periods, and a copy received within the protection window is kept whatever the rules
say. So a burst of forged copies from a stolen append-only key counts as one day's copies and
cannot push out, within the window, what was received before it (docs/protocol.md, "What a
stolen key can still do").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from time import localtime, strftime

from k3s_backup.policy import naming
from k3s_backup.policy.retention import GfsRules, plan_gfs


@dataclass(frozen=True)
class HostPlan:
    keep: list[naming.SnapshotName]
    remove: list[naming.SnapshotName]

    def removes(self, filename: str) -> bool:
        return any(name.filename == filename for name in self.remove)


@dataclass(frozen=True)
class Received:
    """The host's clock: `of(snapshot filename)` the time the host received it (None if
    unknown: kept); copies received less than `protect` seconds before `now` are kept."""

    of: Callable[[str], float | None]
    now: float
    protect: float = 0.0


def plan(
    cluster: str,
    filenames: list[str],
    lineage_of: Callable[[str], str | None],
    rules: GfsRules,
    received: Received | None = None,
) -> HostPlan:
    """`lineage_of(snapshot filename)`: the identity its manifest claims, None if unknown;
    `received`: rotate by the host's receive times (None: by the names' times)."""
    copies = naming.ours(cluster, filenames)
    if not copies:
        return HostPlan([], [])
    current = lineage_of(copies[-1].filename)
    by_node: dict[str, list[naming.SnapshotName]] = defaultdict(list)
    kept: list[naming.SnapshotName] = []
    for copy in copies:
        if lineage_of(copy.filename) == current:
            by_node[copy.node].append(copy)
        else:
            kept.append(copy)
    removed: list[naming.SnapshotName] = []
    for names in by_node.values():
        doomed = _removed(names, rules, received)
        kept += [name for name in names if name.filename not in doomed]
        removed += [name for name in names if name.filename in doomed]
    return HostPlan(sorted(kept), sorted(removed))


def _removed(
    names: list[naming.SnapshotName], rules: GfsRules, received: Received | None
) -> set[str]:
    """One node's copies the rules remove, by receive time when known."""
    if received is None:
        return {name.filename for name in plan_gfs(names, rules).remove}
    times = {name.filename: received.of(name.filename) for name in names}
    known = [name for name in names if times[name.filename] is not None]
    as_received = [_at(name, times[name.filename] or 0.0) for name in known]
    return {
        name.filename
        for name in plan_gfs(as_received, rules).remove
        if received.now - (times[name.filename] or 0.0) >= received.protect
    }


def _at(name: naming.SnapshotName, when: float) -> naming.SnapshotName:
    """The name as if stamped at `when` (local time, as the node stamps): what plan_gfs
    orders and buckets by; the file name stays."""
    return replace(name, unix=int(when), stamp=strftime(naming.STAMP_FORMAT, localtime(when)))


def removable(cluster: str, filename: str, present: set[str], host_plan: HostPlan) -> bool:
    """Whether rotation may delete `filename`: a copy the plan removes, or a manifest or
    bundle whose copy the plan removes or that is gone already (a sidecar alone is harmless,
    and rotation deletes the copy first)."""
    if naming.is_ours(cluster, filename):
        return host_plan.removes(filename)
    snapshot = naming.snapshot_of_sidecar(cluster, filename)
    return snapshot is not None and (snapshot not in present or host_plan.removes(snapshot))
