"""Which copies a cluster owns (pure rules)."""

from __future__ import annotations

from k3s_backup.policy.identity import (
    NO_KUBERNETES,
    ClusterIdentity,
    chain_conflict,
    describe,
    same_cluster,
)

A = ClusterIdentity("uid-a", "2026-01-01T00:00:00Z", 120)
B = ClusterIdentity("uid-b", "2026-06-01T00:00:00Z", 5)


def test_a_kubernetes_cluster_owns_only_copies_with_its_uid() -> None:
    assert same_cluster(A, ClusterIdentity("uid-a", "", 7))  # objects change, the cluster not
    assert not same_cluster(A, B)
    assert not same_cluster(A, None)  # unknown is never "the same"
    assert not same_cluster(A, NO_KUBERNETES)


def test_without_kubernetes_data_todays_rules_hold_but_never_over_a_known_cluster() -> None:
    for current in (NO_KUBERNETES, None):
        assert same_cluster(current, None)
        assert same_cluster(current, NO_KUBERNETES)
        assert not same_cluster(current, A)


def test_a_chain_conflicts_only_where_other_copies_are_and_none_of_its_own() -> None:
    assert chain_conflict(B, []) == []
    assert chain_conflict(B, [A, A, None]) == [A, None]
    assert chain_conflict(B, [A, B]) == []
    assert chain_conflict(NO_KUBERNETES, [None, None]) == []


def test_descriptions_name_uid_creation_and_objects() -> None:
    assert describe(A) == "cluster uid-a, created 2026-01-01T00:00:00Z, 120 objects"
    assert describe(NO_KUBERNETES) == "no Kubernetes data (no cluster identity)"
    assert describe(None).startswith("identity unknown")
