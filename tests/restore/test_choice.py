"""Which cluster's copies a restore takes when copies of several share a cluster name: the one
`--cluster` names, the only one there, or the operator's pick; never the newest across them."""

from __future__ import annotations

import pytest

from k3s_backup.catalogue.inventory import Copy
from k3s_backup.policy import naming
from k3s_backup.policy.identity import ClusterIdentity
from k3s_backup.restore.choice import ClusterChoiceError, one_cluster

OLD = ClusterIdentity("1111aaaa-old", "2025-01-01T00:00:00Z", 40)
NEW = ClusterIdentity("2222bbbb-new", "2026-06-01T00:00:00Z", 12)


def listed(stamp: str, identity: ClusterIdentity | None) -> Copy:
    when = naming.stamp_time(stamp)
    assert when is not None
    name = naming.parse("homelab", f"homelab-{stamp}-node1-{int(when.timestamp())}")
    assert name is not None
    return Copy(name, "backup-host", 1024, has_manifest=True, identity=identity)


COPIES = [
    listed("20261101-020000", OLD),
    listed("20261102-020000", NEW),
    listed("20261103-020000", None),
]


def test_cluster_named_by_the_start_of_its_uid() -> None:
    assert one_cluster(COPIES, "1111", True, None, "homelab") == [COPIES[0]]
    assert one_cluster(COPIES, "unknown", True, None, "homelab") == [COPIES[2]]


def test_an_unknown_cluster_lists_those_with_copies() -> None:
    with pytest.raises(ClusterChoiceError, match="no copy of cluster '9999'") as raised:
        one_cluster(COPIES, "9999", True, None, "homelab")
    assert "2222bbbb-new" in str(raised.value) and "1111aaaa-old" in str(raised.value)


def test_several_clusters_ask_the_operator_newest_group_first() -> None:
    questions: list[str] = []

    def ask(question: str) -> str:
        questions.append(question)
        return "3"  # the third group: the oldest copy's cluster

    assert one_cluster(COPIES, None, True, ask, "homelab") == [COPIES[0]]
    assert "Copies of 3 different clusters named homelab" in questions[0]
    assert questions[0].endswith("Number (1-3): ")


def test_several_clusters_and_nobody_to_ask_name_the_way_on() -> None:
    with pytest.raises(ClusterChoiceError, match="--cluster") as raised:
        one_cluster(COPIES, None, True, None, "homelab")
    assert raised.value.exit_code == 2


def test_a_named_snapshot_needs_no_choice_of_cluster() -> None:
    assert one_cluster(COPIES, None, False, None, "homelab") == COPIES
