"""The Object Lock period: a copy is locked exactly until the scheduled run whose rotation removes
it, checked against rotation itself (plan_gfs over the schedule's runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import islice

import pytest
from cronsim import CronSim

from k3s_backup.policy.lock_period import kept_until_local, retain_until
from k3s_backup.policy.naming import STAMP_FORMAT, SnapshotName
from k3s_backup.policy.retention import GfsRules, plan_gfs
from k3s_backup.policy.schedule import parse


def name_at(when: datetime) -> SnapshotName:
    stamp = when.strftime(STAMP_FORMAT)
    unix = int(when.replace(tzinfo=UTC).timestamp())  # the node's clock taken as UTC
    filename = f"k3s-lab-{stamp}-k3s-05-{unix}"
    return SnapshotName(unix, stamp, "k3s-05", "k3s-lab", "", filename)


def removed_at(made: datetime, rules: GfsRules, cron: str) -> datetime:
    """The first scheduled run after `made` whose rotation removes `made`'s copy."""
    names = [name_at(made)]
    for run in CronSim(cron, made):
        names.append(name_at(run))
        kept = plan_gfs(names, rules, frozenset({names[-1].filename})).keep
        if names[0] not in kept:
            return run
    raise AssertionError("never removed")


CASES = [
    ("0 2 * * *", GfsRules(7)),
    ("0 2 * * *", GfsRules(3, daily=7, weekly=4)),
    ("0 2 * * *", GfsRules(2, weekly=3, monthly=2)),
    ("0 */6 * * *", GfsRules(4, daily=5)),
    ("30 1 * * 1-5", GfsRules(2, daily=4, weekly=2)),
]


@pytest.mark.parametrize(("cron", "rules"), CASES)
def test_the_lock_ends_at_the_run_whose_rotation_removes_the_copy(cron, rules):
    schedule = parse(cron)
    for made in islice(CronSim(cron, datetime(2026, 11, 20, 0, 0)), 30):
        assert kept_until_local(made, rules, schedule) == removed_at(made, rules, cron), made


def test_a_copy_made_by_hand_is_locked_for_what_keep_gives_it():
    made = datetime(2026, 11, 23, 1, 7, 3)  # by hand, before the day's scheduled run
    until = kept_until_local(made, GfsRules(2, daily=7), parse("0 2 * * *"))
    assert until == datetime(2026, 11, 24, 2, 0)  # its day's copy is 02:00's: only keep = 2


def test_retain_until_is_utc_and_object_lock_days_counts_from_the_copy():
    made = datetime(2026, 11, 23, 2, 0, 5)
    name = name_at(made)
    paris = timezone(timedelta(hours=1))
    assert retain_until(name, GfsRules(7), parse("0 2 * * *"), zone=paris) == datetime(
        2026, 11, 30, 1, 0, tzinfo=UTC
    )
    by_days = retain_until(name, GfsRules(7), parse("0 2 * * *"), days=30, zone=paris)
    assert by_days == made.replace(tzinfo=paris) + timedelta(days=30)
