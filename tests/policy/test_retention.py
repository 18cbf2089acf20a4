import pytest

from k3s_backup.policy.naming import SnapshotName, parse
from k3s_backup.policy.retention import GfsRules, plan_gfs, plan_keep_last


def snaps(*unix_times: int):
    names = [parse("c", f"c-20261123-020000-n-{t}") for t in unix_times]
    assert all(names)
    return [n for n in names if n is not None]


def filenames(names):
    return [n.filename for n in names]


def test_keeps_newest_by_name_time():
    plan = plan_keep_last(snaps(5, 1, 3, 2, 4), keep=3)
    assert filenames(plan.keep) == filenames(snaps(3, 4, 5))
    assert filenames(plan.remove) == filenames(snaps(1, 2))


def test_fewer_than_keep_removes_nothing():
    plan = plan_keep_last(snaps(1, 2), keep=7)
    assert plan.remove == []
    assert filenames(plan.keep) == filenames(snaps(1, 2))


def test_protected_copy_survives_even_when_it_looks_oldest():
    # The clock jumped backwards: the copy just made carries the oldest time.
    just_made = snaps(1)[0].filename
    plan = plan_keep_last(snaps(1, 10, 11, 12), keep=3, protect=frozenset({just_made}))
    assert just_made in filenames(plan.keep)
    assert plan.remove == []


def test_keep_must_be_positive():
    with pytest.raises(ValueError, match="never deletes the newest"):
        plan_keep_last(snaps(1), keep=0)


@pytest.mark.parametrize("keep", [1, 2, 3, 7])
def test_ten_runs_leave_exactly_keep(keep):
    plan = plan_keep_last(snaps(*range(10)), keep=keep)
    assert filenames(plan.keep) == filenames(snaps(*range(10 - keep, 10)))
    assert len(plan.remove) == 10 - keep


def test_a_name_built_with_an_impossible_stamp_is_kept_by_count_alone():
    # parse() never yields one, but the plan stays total for any SnapshotName it is given.
    [good] = snaps(2)
    odd = SnapshotName(1, "20261399-256199", "n", "c", "", "c-20261399-256199-n-1")
    plan = plan_gfs([good, odd], GfsRules(last=1, daily=7, weekly=4, monthly=12))
    assert filenames(plan.keep) == [good.filename]
    assert filenames(plan.remove) == [odd.filename]
