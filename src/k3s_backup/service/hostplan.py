"""What the backup host's own rotation removes from a directory: pure, no I/O.

The host sees file names and, for each copy, the cluster identity its manifest claims (the host
holds no recovery key, so it cannot authenticate a manifest: see "Compromised node" in
docs/reliability.md). Every claim only ever makes it keep more: the lineage (identity) of the
newest copy of the cluster is rotated, per node as on the node (catalogue/rotation.py); copies
of every other lineage are kept, as the node keeps another cluster's copies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from k3s_backup.policy import naming
from k3s_backup.policy.retention import GfsRules, plan_gfs


@dataclass(frozen=True)
class HostPlan:
    keep: list[naming.SnapshotName]
    remove: list[naming.SnapshotName]

    def removes(self, filename: str) -> bool:
        return any(name.filename == filename for name in self.remove)


def plan(
    cluster: str, filenames: list[str], lineage_of: Callable[[str], str | None], rules: GfsRules
) -> HostPlan:
    """`lineage_of(snapshot filename)`: the identity its manifest claims, None if unknown."""
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
        node_plan = plan_gfs(names, rules)
        kept += node_plan.keep
        removed += node_plan.remove
    return HostPlan(sorted(kept), sorted(removed))


def removable(cluster: str, filename: str, present: set[str], host_plan: HostPlan) -> bool:
    """Whether rotation may delete `filename`: a copy the plan removes, or a manifest or
    bundle whose copy the plan removes or that is gone already (a sidecar alone is harmless,
    and rotation deletes the copy first)."""
    if naming.is_ours(cluster, filename):
        return host_plan.removes(filename)
    snapshot = naming.snapshot_of_manifest(cluster, filename) or naming.snapshot_of_bundle(
        cluster, filename
    )
    return snapshot is not None and (snapshot not in present or host_plan.removes(snapshot))
