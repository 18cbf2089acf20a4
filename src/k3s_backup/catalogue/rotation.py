"""Apply retention (policy.retention, pure) to the local snapshot dir and to a target.

Copies are grouped by node, so several servers of one cluster can share a backup directory
without rotating each other's copies away.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from k3s_backup.catalogue.inventory import Copy
from k3s_backup.policy import naming
from k3s_backup.policy.retention import GfsPlan, GfsRules, plan_gfs
from k3s_backup.targets.base import Target

KEEP_ALL = 1 << 62  # more copies than any directory holds


def rules_of(target: _HasRetention) -> GfsRules:
    """The node's rules for rotating `target`; an append-only backup host rotates itself
    (`k3s-backup serve-prune` there, with these rules), so the node keeps every copy there."""
    if getattr(target, "mode", "sftp") == "append-only":
        return GfsRules(last=KEEP_ALL)
    return GfsRules(target.keep, target.keep_daily, target.keep_weekly, target.keep_monthly)


class _HasRetention(Protocol):
    keep: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int


def plan(copies: list[Copy], rules: GfsRules, protect: frozenset[str]) -> GfsPlan:
    by_node: dict[str, list[naming.SnapshotName]] = defaultdict(list)
    for copy in copies:
        by_node[copy.name.node].append(copy.name)
    keep_all: list[naming.SnapshotName] = []
    remove_all: list[naming.SnapshotName] = []
    reasons: dict[str, list[str]] = {}
    for names in by_node.values():
        node_plan = plan_gfs(names, rules, protect)
        keep_all += node_plan.keep
        remove_all += node_plan.remove
        reasons.update(node_plan.reasons)
    return GfsPlan(keep=sorted(keep_all), remove=sorted(remove_all), reasons=reasons)


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
