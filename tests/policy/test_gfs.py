"""GFS retention with restic's `forget` semantics, across a simulated year of daily runs."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from k3s_backup.policy.naming import SnapshotName, parse
from k3s_backup.policy.retention import GfsRules, plan_gfs

YEAR_START = datetime(2026, 1, 1, 2, 0, 0)


def daily_runs(days: int = 365, start: datetime = YEAR_START) -> list[SnapshotName]:
    names = []
    for day in range(days):
        when = start + timedelta(days=day)
        unix = int(when.timestamp())
        name = parse("c", f"c-{when:%Y%m%d-%H%M%S}-node-{unix}")
        assert name is not None
        names.append(name)
    return names


def kept_dates(rules: GfsRules, runs: list[SnapshotName] | None = None) -> list[date]:
    plan = plan_gfs(runs or daily_runs(), rules)
    return [datetime.strptime(n.stamp, "%Y%m%d-%H%M%S").date() for n in plan.keep]


def test_last_keeps_the_newest_n():
    assert kept_dates(GfsRules(last=7)) == [date(2026, 12, 25) + timedelta(d) for d in range(7)]


def test_daily_keeps_one_per_day_for_the_last_n_days():
    runs = daily_runs() + daily_runs(start=YEAR_START + timedelta(hours=12))  # two a day
    plan = plan_gfs(runs, GfsRules(last=1, daily=7))
    assert len(plan.keep) == 7
    assert [n.stamp for n in plan.keep][-1] == "20261231-140000"
    assert all(n.stamp.endswith("140000") for n in plan.keep)  # the newest of each day


def test_weekly_keeps_the_newest_of_each_iso_week():
    dates = kept_dates(GfsRules(last=1, weekly=4))
    assert dates == [date(2026, 12, 13), date(2026, 12, 20), date(2026, 12, 27), date(2026, 12, 31)]


def test_monthly_keeps_the_last_day_of_each_month():
    dates = kept_dates(GfsRules(last=1, monthly=12))
    month_ends = [date(2026, m + 1, 1) - timedelta(days=1) for m in range(1, 12)] + [
        date(2026, 12, 31)
    ]
    assert dates == month_ends


@pytest.mark.parametrize(
    ("rules", "count"),
    [
        (GfsRules(last=7), 7),
        (GfsRules(last=1, daily=7), 7),
        (GfsRules(last=7, daily=7), 7),  # the same copies: kept once
        # daily: Dec 25-31; weekly adds Dec 13 and 20 (27, 31 are daily); monthly adds 11 ends
        (GfsRules(last=3, daily=7, weekly=4, monthly=12), 7 + 2 + 11),
        (GfsRules(last=1, monthly=24), 12),  # fewer months than asked: all of them
        (GfsRules(last=400), 365),
    ],
)
def test_counts_over_a_year(rules, count):
    assert len(kept_dates(rules)) == count


def test_reasons_say_which_rules_keep_each_copy():
    plan = plan_gfs(daily_runs(), GfsRules(last=2, daily=3, monthly=2))
    newest = plan.keep[-1].filename
    assert plan.reasons[newest] == ["last 1", "daily 1", "monthly 1"]
    november_end = next(n for n in plan.keep if n.stamp.startswith("20261130"))
    assert plan.reasons[november_end.filename] == ["monthly 2"]
    assert set(plan.reasons) == {n.filename for n in plan.keep}


def words(plan, stamp: str) -> list[str]:
    [name] = [f for f in plan.why if f"-{stamp}-" in f]
    return [r.words for r in plan.why[name]]


def test_reasons_in_words_for_every_copy_kept_or_removed():
    """What `prune --dry-run` prints: each kept copy's rules, and each removed copy's reason
    for every rule that passed it by."""
    runs = daily_runs(60) + daily_runs(60, start=YEAR_START + timedelta(hours=12))  # two a day
    plan = plan_gfs(runs, GfsRules(last=3, daily=4, weekly=2))
    assert words(plan, "20260301-140000") == [
        "the newest copy",
        "daily of 2026-03-01",
        "weekly of 2026-W09",
    ]
    assert words(plan, "20260301-020000") == ["one of the 3 newest"]
    assert words(plan, "20260227-020000") == [
        "older than the 3 newest",
        "not the newest of 2026-02-27",
        "not the newest of 2026-W09",
    ]
    assert words(plan, "20260222-140000") == ["weekly of 2026-W08"]
    assert words(plan, "20260215-140000") == [
        "older than the 3 newest",
        "older than the 4 days kept",
        "older than the 2 weeks kept",
    ]
    only_last = plan_gfs(runs, GfsRules(last=7))
    assert words(only_last, "20260215-140000") == ["older than the 7 kept"]
    assert set(plan.why) == {n.filename for n in runs}


def test_a_protected_copy_is_kept_even_if_no_rule_keeps_it():
    runs = daily_runs(30)
    oldest = runs[0].filename
    plan = plan_gfs(runs, GfsRules(last=3), protect=frozenset({oldest}))
    assert plan.reasons[oldest] == ["just made"]
    assert len(plan.keep) == 4
