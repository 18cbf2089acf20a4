"""Which local snapshots never left the node, and the free-space bound that lets them go."""

from __future__ import annotations

from k3s_backup.policy.naming import SnapshotName, parse
from k3s_backup.policy.offsite import lacking, only_here, protect_unshipped, remembered
from k3s_backup.policy.retention import GfsRules

SIZE = 100
NEVER = {"nas": None}  # a target never reached


def nights(count: int) -> list[SnapshotName]:
    names = []
    for night in range(count):
        name = parse("c", f"c-202611{night + 1:02d}-020000-node-{1000 + night}")
        assert name is not None
        names.append(name)
    return names


def stored(name: SnapshotName) -> SnapshotName:
    """The name of its copy on a target (`.zst` added): the same times."""
    copy = parse("c", name.filename + ".zst")
    assert copy is not None
    return copy


def sizes(names: list[SnapshotName]) -> dict[str, int]:
    return {n.filename: SIZE for n in names}


def test_a_target_holds_everything_up_to_its_newest_copy_and_nothing_when_never_reached():
    local = nights(5)
    held = {"nas": stored(local[2]), "s3": None}
    assert lacking(local, held) == local  # s3 lacks all of them
    assert only_here(local, held) == local[3:]
    assert lacking(local, {"nas": stored(local[2])}) == local[3:]
    assert only_here(local, {}) == local


def test_two_snapshots_in_one_second_are_told_apart_by_their_stamps():
    first, second = (parse("c", f"c-20261101-02000{i}-node-1000") for i in (0, 1))
    assert first is not None and second is not None
    assert lacking([first, second], {"nas": stored(first)}) == [second]


def test_while_there_is_room_nothing_a_target_lacks_is_rotated():
    local = nights(7)
    held = {"nas": local[1]}
    decision = protect_unshipped(local, sizes(local), GfsRules(last=3), held, 10**9, SIZE)
    # keep_local keeps the newest 3; the 2 older ones nas lacks are kept too; 1000-1001 go.
    assert decision.keep == frozenset(n.filename for n in local[2:4])
    assert decision.dropped == []


def test_below_room_for_one_more_snapshot_the_oldest_unshipped_go_first():
    local = nights(7)
    decision = protect_unshipped(
        local, sizes(local), GfsRules(last=3), NEVER, SIZE * 2 - 1, SIZE * 3
    )
    assert decision.dropped == local[:2]  # two freed make room for the next: 299 -> 399
    assert decision.keep == frozenset(n.filename for n in local[2:4])


def test_the_bound_never_drops_what_the_rules_keep():
    local = nights(4)
    decision = protect_unshipped(local, sizes(local), GfsRules(last=3), NEVER, 0, SIZE * 10)
    assert decision.dropped == local[:1]
    assert decision.keep == frozenset()


def test_a_target_this_run_could_not_read_is_remembered_from_the_last_run_that_reached_it():
    newest = stored(nights(4)[3])
    reached = {"targets": {"nas": {"ok": True, "newest": newest.filename}}}
    missed = {"targets": {"nas": {"ok": False, "newest": None}}}
    assert remembered({"last_run": reached}, "nas", "c") == newest
    assert remembered({"last_run": missed, "last_success": reached}, "nas", "c") == newest
    assert remembered({"last_run": missed}, "nas", "c") is None
    assert remembered({}, "nas", "c") is None
    assert remembered({"last_run": "garbage"}, "nas", "c") is None
