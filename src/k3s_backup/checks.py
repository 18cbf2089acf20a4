"""The levels every check reports (status, doctor), and how fresh a newest copy is: the same
words and limits wherever a backup's health is judged."""

from __future__ import annotations

from datetime import timedelta

OK, WARN, FAIL = "OK", "WARN", "FAIL"
WARN_AFTER, FAIL_AFTER = 2, 3  # times the schedule's longest gap


def freshness(age: timedelta, interval: timedelta) -> str:
    if age > interval * FAIL_AFTER:
        return FAIL
    if age > interval * WARN_AFTER:
        return WARN
    return OK


def human_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 0:
        return "in the future (check the clock)"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h ago" if days else f"{hours}h {rest // 60}m ago"
