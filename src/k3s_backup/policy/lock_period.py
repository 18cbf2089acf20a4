"""How long an S3 Object Lock keeps a copy: until the scheduled run whose rotation would remove
it. Pure: a function of the copy's name, the target's retention rules and the schedule.

A copy made at time t is kept by rotation (policy.retention) while any rule keeps it; with only
the scheduled runs happening, that is until the first of these runs at which no rule does:
- keep = N: the N-th scheduled run after t;
- keep_daily = D, if t's copy is the last of its day (the next scheduled run is on a later day):
  the first scheduled run of the D-th later day that has one; weekly (ISO weeks) and monthly
  alike. Otherwise the copy is not the one that rule keeps for its period.
The lock ends at the latest of these: every copy the rules keep is locked for the whole time they
keep it, and its lock has expired when the run that rotates it starts (that run's rotation comes
after its snapshot and upload: that time is the margin, so no run finds the copy it is due to
remove still locked). A run by hand makes extra copies: rotation may then want a copy earlier
than its lock allows; it is reported as locked and removed by the first run after its lock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

from cronsim import CronSim

from k3s_backup.policy.naming import SnapshotName, stamp_time
from k3s_backup.policy.retention import GfsRules
from k3s_backup.policy.schedule import Schedule

_BEFORE = timedelta(seconds=1)  # CronSim yields runs strictly after its start


def _next_day(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, moment.day) + timedelta(days=1)


def _next_week(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, moment.day) + timedelta(days=7 - moment.weekday())


def _next_month(moment: datetime) -> datetime:
    return datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1)


_PERIODS: tuple[tuple[str, Callable[[datetime], datetime]], ...] = (
    ("daily", _next_day),
    ("weekly", _next_week),
    ("monthly", _next_month),
)


def _first_run_from(schedule: Schedule, moment: datetime) -> datetime:
    return next(CronSim(schedule.cron, moment - _BEFORE))


def _period_end(
    schedule: Schedule, made: datetime, count: int, next_period: Callable[[datetime], datetime]
) -> datetime | None:
    """The first scheduled run of the `count`-th later period holding one, if `made`'s copy is
    the last of its period (else None: this rule does not keep it)."""
    if count == 0 or next(CronSim(schedule.cron, made)) < next_period(made):
        return None
    moment = made
    for _ in range(count):
        moment = _first_run_from(schedule, next_period(moment))
    return moment


def kept_until_local(made: datetime, rules: GfsRules, schedule: Schedule) -> datetime:
    """The scheduled run (local time, naive like `made`) whose rotation removes `made`'s copy."""
    runs = CronSim(schedule.cron, made)
    end = made
    for _ in range(rules.last):
        end = next(runs)
    counts = {"daily": rules.daily, "weekly": rules.weekly, "monthly": rules.monthly}
    for rule, next_period in _PERIODS:
        until = _period_end(schedule, made, counts[rule], next_period)
        if until is not None:
            end = max(end, until)
    return end


def retain_until(
    name: SnapshotName,
    rules: GfsRules,
    schedule: Schedule,
    days: int | None = None,
    zone: tzinfo | None = None,
) -> datetime:
    """The Object Lock retain-until date (UTC) of a copy and its sidecars: `days` after the
    copy was made when given (`object_lock_days`), else what `kept_until_local` derives. The
    time stamped in the name is the node's local time (`zone`; None: this process's), as the
    schedule's is: the name's Unix suffix is K3s's, not the stamp's clock."""
    made = stamp_time(name.stamp) or datetime.fromtimestamp(name.unix)
    end = (
        made + timedelta(days=days) if days is not None else kept_until_local(made, rules, schedule)
    )
    return (end.replace(tzinfo=zone) if zone else end).astimezone(UTC)
