"""The backup schedule: a Debian cron expression, its longest gap, its next run, and its systemd
OnCalendar form. Pure: no I/O. Parsing and stepping are cronsim's (the cron engine of
healthchecks.io, which mimics Debian cron); we only restrict it to what Debian cron accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from cronsim import CronSim, CronSimError

DEFAULT_SCHEDULE = "0 2 * * *"
MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
# Debian cron: numbers, *, ranges, steps, lists and English names; not Quartz's L, W, #, ?.
_FIELD_RE = re.compile(r"^[0-9A-Za-z*,/-]+$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_NAMES: dict[str, tuple[str, ...]] = {
    "month": _MONTHS,
    "day-of-week": ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"),
}
_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
# One year of runs bounds the longest gap; the cap keeps minute schedules cheap.
_GAP_HORIZON = timedelta(days=366)
_GAP_MAX_RUNS = 20_000
_REFERENCE = datetime(2025, 1, 1, tzinfo=UTC)  # any fixed instant: a gap does not depend on it


class ScheduleError(ValueError):
    """A schedule we cannot use, with a message saying why and what would work."""


@dataclass(frozen=True)
class Schedule:
    expression: str  # as written by the operator (a macro stays a macro)
    fields: tuple[str, str, str, str, str]  # the five cron fields, macros expanded

    @property
    def cron(self) -> str:
        return " ".join(self.fields)


def parse(expression: str) -> Schedule:
    """A validated schedule, or ScheduleError naming the field that is wrong."""
    text = " ".join(expression.split())
    if text == "@reboot":
        raise ScheduleError("@reboot is not a schedule with an interval; use e.g. '0 2 * * *'")
    expanded = MACROS.get(text.lower(), text)
    parts = expanded.split()
    if len(parts) != 5:
        raise ScheduleError(
            f"{expression!r} must have 5 fields (minute hour day-of-month month day-of-week),"
            f" got {len(parts)}; e.g. '0 2 * * *' for 02:00 daily"
        )
    for name, part in zip(FIELDS, parts, strict=True):
        names = re.findall(r"[A-Za-z]+", part)
        if not _FIELD_RE.match(part) or any(n.upper() not in _NAMES.get(name, ()) for n in names):
            raise ScheduleError(f"{expression!r}: {name} field {part!r} is not Debian cron syntax")
    try:
        CronSim(expanded, _REFERENCE)
    except CronSimError as exc:
        raise ScheduleError(f"{expression!r}: {str(exc).lower()} field") from None
    fields = (parts[0], parts[1], parts[2], parts[3], parts[4])
    return Schedule(text, fields)


def runs_after(schedule: Schedule, moment: datetime) -> list[datetime]:
    """The next few runs strictly after `moment`, in `moment`'s time zone."""
    return list(islice(CronSim(schedule.cron, moment), 5))


def next_run(schedule: Schedule, moment: datetime) -> datetime:
    return next(CronSim(schedule.cron, moment))


def longest_gap(schedule: Schedule) -> timedelta:
    """The longest time between two consecutive runs over a year: what "late" is measured in."""
    previous = _REFERENCE
    end = _REFERENCE + _GAP_HORIZON
    gap = timedelta(0)
    first = True
    for count, run in enumerate(CronSim(schedule.cron, _REFERENCE)):
        if not first:
            gap = max(gap, run - previous)
        first, previous = False, run
        if run > end or count >= _GAP_MAX_RUNS:
            break
    return gap


# ---- systemd -----------------------------------------------------------------------------


def _values(field: int, part: str) -> list[int]:
    """Expanded values of one field, as cronsim reads it (names, ranges and steps included)."""
    expression = ["0", "0", "*", "*", "*"]
    expression[field] = part
    sim = CronSim(" ".join(expression), _REFERENCE)
    sets = (sim.minutes, sim.hours, sim.days, sim.months, sim.weekdays)
    return sorted(v for v in sets[field] if isinstance(v, int))


def _systemd_list(values: list[int], full: range, width: int) -> str:
    if set(values) >= set(full):
        return "*"
    return ",".join(f"{v:0{width}d}" for v in values)


def on_calendar(schedule: Schedule) -> str:
    """The systemd OnCalendar= equivalent. Cron runs when EITHER restricted day field matches,
    systemd only when BOTH do, so a schedule restricting both is refused rather than changed."""
    minute, hour, day, month, weekday = schedule.fields
    if not day.startswith("*") and not weekday.startswith("*"):
        raise ScheduleError(
            f"{schedule.expression!r} restricts both day-of-month and day-of-week: cron runs when"
            " either matches, a systemd timer only when both do. Restrict one of them, or use"
            " --scheduler cron"
        )
    days = {v % 7 for v in _values(4, weekday)}
    weekdays = "" if len(days) == 7 else ",".join(_DAYS[d] for d in sorted(days)) + " "
    months = _systemd_list(_values(3, month), range(1, 13), 2)
    days_of_month = _systemd_list(_values(2, day), range(1, 32), 2)
    hours = _systemd_list(_values(1, hour), range(24), 2)
    minutes = _systemd_list(_values(0, minute), range(60), 2)
    date, time = f"*-{months}-{days_of_month}", f"{hours}:{minutes}:00"
    return f"{weekdays}{date} {time}"
