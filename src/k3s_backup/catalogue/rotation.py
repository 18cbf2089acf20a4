"""Apply retention (policy.retention, pure) to the local snapshot dir and to a target.

Copies are grouped by node, so several servers of one cluster can share a backup directory
without rotating each other's copies away.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from k3s_backup.catalogue.inventory import Copy
from k3s_backup.policy import naming
from k3s_backup.policy.retention import GfsPlan, GfsRules, Reason, plan_gfs
from k3s_backup.report import shown_time
from k3s_backup.targets.base import CopyLocked, Target

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
    why: dict[str, list[Reason]] = {}
    for names in by_node.values():
        node_plan = plan_gfs(names, rules, protect)
        keep_all += node_plan.keep
        remove_all += node_plan.remove
        why.update(node_plan.why)
    return GfsPlan(keep=sorted(keep_all), remove=sorted(remove_all), why=why)


@dataclass(frozen=True)
class Locked:
    """A copy rotation would remove that a retention lock (S3 Object Lock) still keeps."""

    name: naming.SnapshotName
    until: datetime | None  # None: a legal hold, no date

    @property
    def held(self) -> str:
        if self.until is None:
            return "under a legal hold"
        return f"locked until {shown_time(self.until)}"

    def describe(self, location: str) -> str:
        return f"{self.name.filename} on {location}: {self.held}; removed by the first run after"


def remove_one(target: Target, name: naming.SnapshotName) -> Locked | None:
    """Delete a copy, then its manifest and restore bundle (a sidecar alone is harmless, a
    copy alone is not). A copy still locked is left whole and returned, not a failure."""
    try:
        target.delete(name.filename)
    except CopyLocked as exc:
        return Locked(name, exc.until)
    for sidecar in (naming.manifest_name(name.filename), naming.bundle_name(name.filename)):
        with contextlib.suppress(CopyLocked):  # locked with its copy: goes with a later run
            target.delete(sidecar)
    return None
