"""The schedule: Debian cron syntax only, its longest gap, next run, and its systemd form checked
against systemd's own calendar engine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from k3s_backup.policy.schedule import (
    ScheduleError,
    longest_gap,
    next_run,
    on_calendar,
    parse,
    runs_after,
)

BASE = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "gap"),
    [
        ("0 2 * * *", timedelta(days=1)),
        ("*/15 * * * *", timedelta(minutes=15)),
        ("0 2 * * 1-5", timedelta(days=3)),  # Friday to Monday
        ("@weekly", timedelta(days=7)),
        ("0 */6 * * *", timedelta(hours=6)),
        ("30 3 1,15 * *", timedelta(days=17)),  # the 15th to the 1st of a 31-day month
    ],
)
def test_longest_gap_is_what_late_is_measured_in(expression, gap):
    assert longest_gap(parse(expression)) == gap


def test_next_run_of_the_guide_schedule_is_the_next_0200():
    schedule = parse("0 2 * * *")
    assert next_run(schedule, BASE.replace(hour=3)) == datetime(2026, 1, 2, 2, 0, tzinfo=UTC)
    assert next_run(schedule, BASE.replace(hour=1)) == datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 2 * *", "must have 5 fields"),
        ("0 2 * * * *", "must have 5 fields"),
        ("0 25 * * *", "bad hour"),
        ("0 2 L * *", "day-of-month field 'L' is not Debian cron syntax"),
        ("0 2 * * 5L", "day-of-week field '5L'"),
        ("0 2 * * 5#2", "day-of-week field '5#2'"),
        ("0 2 ? * *", "is not Debian cron syntax"),
        ("@reboot", "not a schedule with an interval"),
        ("0 2 * * xyz", "day-of-week field 'xyz'"),
    ],
)
def test_what_debian_cron_would_not_run_is_refused(expression, message):
    with pytest.raises(ScheduleError, match=re.escape(message)):
        parse(expression)


def test_names_and_macros_are_accepted():
    assert parse("0 2 * jul sun").cron == "0 2 * jul sun"
    assert parse("@daily").cron == "0 0 * * *"


def test_both_day_fields_cannot_be_a_timer():
    with pytest.raises(ScheduleError, match="either matches"):
        on_calendar(parse("0 2 1 * 1"))


def _systemd_elapses(calendar: str, count: int) -> list[datetime]:
    command = [
        "systemd-analyze",
        "calendar",
        f"--iterations={count}",
        f"--base-time={BASE:%Y-%m-%d %H:%M:%S} UTC",
        calendar,
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, "TZ": "UTC"}
    ).stdout
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", out)
    return [datetime.strptime(s, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) for s in stamps]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize(
    "expression",
    ["0 2 * * *", "*/15 * * * *", "0 2 * * 1-5", "@weekly", "30 3 1,15 * *", "5 4 * 2-4 sun"],
)
def test_systemd_runs_exactly_when_cron_would(expression):
    schedule = parse(expression)
    expected = runs_after(schedule, BASE)
    assert _systemd_elapses(on_calendar(schedule), len(expected)) == expected
