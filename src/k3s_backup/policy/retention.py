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
class Reason:
    """Why rotation keeps (or removes) a copy, as data: the rule, its short `tag` ("last 1",
    "daily 4", "just made") and the same in `words` for a person ("one of the 7 newest")."""

    rule: str  # last, daily, weekly, monthly, protected, or a caller's (offsite: lacking)
    kept: bool
    tag: str
    words: str


@dataclass(frozen=True)
class GfsPlan:
    keep: list[SnapshotName]
    remove: list[SnapshotName]
    why: dict[str, list[Reason]]  # filename -> why it is kept, or else why it goes

    @property
    def reasons(self) -> dict[str, list[str]]:
        """filename -> the tags of the rules that keep it (kept copies only)."""
        tags = {f: [r.tag for r in rs if r.kept] for f, rs in self.why.items()}
        return {f: t for f, t in tags.items() if t}

    def protected_by(self, filename: str, reason: Reason) -> None:
        """Say why a copy the caller protected is kept (a target lacks it), in place of
        "just made"."""
        kept = [r for r in self.why.get(filename, []) if r.rule != "protected"]
        self.why[filename] = [*kept, reason]


PERIODS = {"daily": "days", "weekly": "weeks", "monthly": "months"}


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


def _period(rule: str, bucket: tuple[int, ...]) -> str:
    """2026-11-05, 2026-W47, 2026-11."""
    if rule == "daily":
        return "{:04d}-{:02d}-{:02d}".format(*bucket)
    if rule == "weekly":
        return "{:04d}-W{:02d}".format(*bucket)
    return "{:04d}-{:02d}".format(*bucket)


def _by_last(index: int, rules: GfsRules) -> Reason:
    if index < rules.last:
        words = "the newest copy" if index == 0 else f"one of the {rules.last} newest"
        return Reason("last", True, f"last {index + 1}", words)
    alone = not (rules.daily or rules.weekly or rules.monthly)
    kept = "one" if rules.last == 1 else str(rules.last)
    return Reason("last", False, "", f"older than the {kept} {'kept' if alone else 'newest'}")


def _by_period(rule: str, count: int, newest_first: list[SnapshotName]) -> list[tuple[str, Reason]]:
    """The newest copy of each of the last `count` periods is kept; every other is said why not."""
    why: list[tuple[str, Reason]] = []
    seen: list[tuple[int, ...]] = []
    for snapshot in newest_first:
        bucket = _bucket(rule, snapshot)
        if bucket is None:
            continue
        period = _period(rule, bucket)
        if bucket in seen:
            why.append((snapshot.filename, Reason(rule, False, "", f"not the newest of {period}")))
        elif len(seen) == count:
            words = f"older than the {count} {PERIODS[rule]} kept"
            why.append((snapshot.filename, Reason(rule, False, "", words)))
        else:
            seen.append(bucket)
            reason = Reason(rule, True, f"{rule} {len(seen)}", f"{rule} of {period}")
            why.append((snapshot.filename, reason))
    return why


def plan_gfs(
    snapshots: list[SnapshotName], rules: GfsRules, protect: frozenset[str] = frozenset()
) -> GfsPlan:
    """Keep the newest `last`, and the newest copy of each of the last N days/weeks/months;
    each copy with the reasons it is kept, or (kept by no rule) each rule's reason it goes."""
    if rules.last < 1:
        raise ValueError("keep must be at least 1: rotation never deletes the newest copy")
    newest_first = sorted(snapshots, reverse=True)
    why: dict[str, list[Reason]] = {}
    for index, snapshot in enumerate(newest_first):  # a name listed twice: both its reasons
        why.setdefault(snapshot.filename, []).append(_by_last(index, rules))
    for rule, count in (
        ("daily", rules.daily),
        ("weekly", rules.weekly),
        ("monthly", rules.monthly),
    ):
        if count:
            for filename, reason in _by_period(rule, count, newest_first):
                why[filename].append(reason)
    for filename in protect & why.keys():
        why[filename].append(Reason("protected", True, "just made", "just made by this run"))
    kept = {f for f, reasons in why.items() if any(r.kept for r in reasons)}
    for filename in kept:  # a kept copy is said why it is kept, never why a rule passed it by
        why[filename] = [r for r in why[filename] if r.kept]
    keep = [s for s in newest_first if s.filename in kept]
    remove = [s for s in newest_first if s.filename not in kept]
    return GfsPlan(keep=sorted(keep), remove=sorted(remove), why=why)
