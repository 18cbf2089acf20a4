"""How every command shows a time and a count to people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from k3s_backup.report import plural, shown_time

MOMENT = datetime(2026, 12, 2, 1, 30, 5, 123456, tzinfo=UTC)


def test_every_kind_of_time_is_shown_as_local_time_with_its_offset_to_the_second():
    local = MOMENT.astimezone()
    expected = local.replace(microsecond=0).isoformat(sep=" ")
    assert shown_time(MOMENT) == expected
    assert shown_time(int(MOMENT.timestamp())) == expected  # a unix time (snapshot names)
    assert shown_time("2026-12-02T01:30:05Z") == expected  # a manifest's UTC time
    assert shown_time(MOMENT.astimezone(timezone(timedelta(hours=5))).isoformat()) == expected
    assert shown_time(local.replace(tzinfo=None)) == expected  # naive: already local
    assert shown_time(None) == "-" and shown_time("not a time") == "not a time"


def test_counts_are_singular_for_one():
    assert [plural(n, "copy") for n in (0, 1, 2)] == ["0 copies", "1 copy", "2 copies"]
    assert plural(1, "snapshot") == "1 snapshot" and plural(3, "snapshot") == "3 snapshots"
