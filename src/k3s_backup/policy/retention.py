"""Which copies to keep: a pure function of names and counts (BorgBackup's prune as a function)."""

from __future__ import annotations

from dataclasses import dataclass

from k3s_backup.policy.naming import SnapshotName, stamp_time


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
    gfs = plan_gfs(snapshots, GfsRules(last=keep), protect)
    return RetentionPlan(keep=gfs.keep, remove=gfs.remove)


@dataclass(frozen=True)
class GfsRules:
    """restic `forget` rules: a copy is kept if any rule keeps it. 0 disables a rule."""

    last: int
    daily: int = 0
    weekly: int = 0
    monthly: int = 0


@dataclass(frozen=True)
class GfsPlan:
    keep: list[SnapshotName]
    remove: list[SnapshotName]
    reasons: dict[str, list[str]]  # filename -> the rules that keep it


def _bucket(rule: str, name: SnapshotName) -> tuple[int, ...] | None:
    """The period a copy falls in, by the local time stamped in its name (as restic does);
    None for a stamp that is no real time (`naming.parse` yields none, but stay total)."""
    when = stamp_time(name.stamp)
    if when is None:
        return None
    if rule == "daily":
        return (when.year, when.month, when.day)
    if rule == "weekly":
        year, week, _ = when.isocalendar()
        return (year, week)
    return (when.year, when.month)


def plan_gfs(
    snapshots: list[SnapshotName], rules: GfsRules, protect: frozenset[str] = frozenset()
) -> GfsPlan:
    """Keep the newest `last`, and the newest copy of each of the last N days/weeks/months."""
    if rules.last < 1:
        raise ValueError("keep must be at least 1: rotation never deletes the newest copy")
    newest_first = sorted(snapshots, reverse=True)
    reasons: dict[str, list[str]] = {s.filename: [] for s in newest_first}
    for index, snapshot in enumerate(newest_first[: rules.last]):
        reasons[snapshot.filename].append(f"last {index + 1}")
    for rule, count in (
        ("daily", rules.daily),
        ("weekly", rules.weekly),
        ("monthly", rules.monthly),
    ):
        seen: list[tuple[int, ...]] = []
        for snapshot in newest_first:
            bucket = _bucket(rule, snapshot)
            if bucket is None or bucket in seen:
                continue
            if len(seen) == count:
                break
            seen.append(bucket)
            reasons[snapshot.filename].append(f"{rule} {len(seen)}")
    for filename in protect & reasons.keys():
        reasons[filename].append("just made")
    keep = [s for s in newest_first if reasons[s.filename]]
    remove = [s for s in newest_first if not reasons[s.filename]]
    return GfsPlan(
        keep=sorted(keep), remove=sorted(remove), reasons={k: v for k, v in reasons.items() if v}
    )
