"""The backup host's rotation plan: the node's rules, per node, on the newest lineage only."""

from __future__ import annotations

from k3s_backup.policy.retention import GfsRules
from k3s_backup.service.hostplan import plan, removable

CLUSTER = "k3s-lab"


def name(day: int, node: str = "k3s-05") -> str:
    return f"k3s-lab-202611{day:02d}-020000-{node}-{1795000000 + day * 86400}"


def test_keeps_the_newest_per_node_of_the_newest_lineage_only() -> None:
    lost = [name(1), name(2)]  # another cluster's, under our name
    current = [name(3), name(4), name(5), name(4, "k3s-06")]
    lineage = {n: "old" for n in lost} | {n: "new" for n in current}
    result = plan(CLUSTER, [*lost, *current, "notes.txt"], lineage.get, GfsRules(last=2))
    assert [n.filename for n in result.remove] == [name(3)]
    assert sorted(n.filename for n in result.keep) == sorted(
        [*lost, name(4), name(5), name(4, "k3s-06")]
    )


def test_a_forged_newest_lineage_only_makes_the_host_keep_more() -> None:
    real = [name(1), name(2), name(3)]
    forged = name(9)
    lineage = {n: "real" for n in real} | {forged: "forged"}
    result = plan(CLUSTER, [*real, forged], lineage.get, GfsRules(last=1))
    assert result.remove == []


def test_sidecars_follow_their_copy() -> None:
    copies = [name(1), name(2)]
    result = plan(CLUSTER, copies, lambda _n: None, GfsRules(last=1))
    present = {*copies, name(1) + ".json", name(2) + ".json", name(7) + ".json"}
    assert removable(CLUSTER, name(1), present, result)
    assert removable(CLUSTER, name(1) + ".json", present, result)
    assert removable(CLUSTER, name(7) + ".json", present, result)  # its copy is gone
    assert not removable(CLUSTER, name(2) + ".bundle.tar", present, result)
    assert not removable(CLUSTER, name(2), present, result)
    assert not removable(CLUSTER, "notes.txt", present, result)
    assert not removable("other", name(1), present, result)
