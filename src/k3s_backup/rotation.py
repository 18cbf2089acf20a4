"""Apply retention (policy.retention, pure) to the local snapshot dir and to a target.

Copies are grouped by node, so several servers of one cluster can share a backup directory
without rotating each other's copies away.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from k3s_backup.inventory import Copy
from k3s_backup.policy import naming
from k3s_backup.policy.retention import RetentionPlan, plan_keep_last
from k3s_backup.targets.base import Target


def plan(copies: list[Copy], keep: int, protect: frozenset[str]) -> RetentionPlan:
    by_node: dict[str, list[naming.SnapshotName]] = defaultdict(list)
    for copy in copies:
        by_node[copy.name.node].append(copy.name)
    keep_all: list[naming.SnapshotName] = []
    remove_all: list[naming.SnapshotName] = []
    for names in by_node.values():
        node_plan = plan_keep_last(names, keep, protect)
        keep_all += node_plan.keep
        remove_all += node_plan.remove
    return RetentionPlan(keep=sorted(keep_all), remove=sorted(remove_all))


def remove_from_target(target: Target, removal: list[naming.SnapshotName]) -> None:
    """Delete each copy, then its manifest and restore bundle (a sidecar alone is harmless,
    a copy alone is not)."""
    for name in removal:
        target.delete(name.filename)
        target.delete(naming.manifest_name(name.filename))
        target.delete(naming.bundle_name(name.filename))


def remove_local(
    removal: list[naming.SnapshotName],
    delete: Callable[[str], str | None],
    warn: Callable[[str], None],
) -> None:
    for name in removal:
        warning = delete(name.filename)
        if warning:
            warn(warning)
