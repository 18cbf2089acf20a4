"""Which cluster a copy belongs to, and what that allows: pure rules, no I/O.

A cluster's identity is the UID of its `kube-system` namespace, read from the snapshot itself
(the Kubernetes convention; it survives a restore and differs between two installs). Three cases:
- a known identity (`uid` set);
- no identity: the snapshot was read and holds no Kubernetes data (a plain etcd);
- unknown (`None`): a copy made before identities were recorded, or one that could not be read.
An unknown copy is never taken for "the same cluster": rotation leaves it alone and `run` will not
start a chain over it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterIdentity:
    uid: str  # "" when the snapshot holds no Kubernetes data
    created: str = ""  # the namespace's creationTimestamp (RFC 3339), when the cluster began
    objects: int = 0  # Kubernetes objects in the snapshot

    @property
    def kubernetes(self) -> bool:
        return bool(self.uid)


NO_KUBERNETES = ClusterIdentity(uid="")


def same_cluster(current: ClusterIdentity | None, other: ClusterIdentity | None) -> bool:
    """Whether a copy of identity `other` belongs to the cluster of `current`. A Kubernetes
    cluster owns only copies with its UID; without Kubernetes data (or without knowing what the
    current cluster is) today's rules hold for every copy that has no known UID."""
    if current is not None and current.kubernetes:
        return other is not None and other.uid == current.uid
    return other is None or not other.kubernetes


def uid_of(identity: ClusterIdentity | None) -> str | None:
    """The key copies are grouped by: the UID, "" for no Kubernetes data, None if unknown."""
    return None if identity is None else identity.uid


def describe(identity: ClusterIdentity | None) -> str:
    """`cluster 5b0c…-…, created 2026-01-04T10:00:00Z, 1234 objects` in words."""
    if identity is None:
        return "identity unknown (made before k3s-backup recorded cluster identities)"
    if not identity.kubernetes:
        return "no Kubernetes data (no cluster identity)"
    created = f", created {identity.created}" if identity.created else ""
    return f"cluster {identity.uid}{created}, {identity.objects} objects"


def chain_conflict(
    current: ClusterIdentity, present: Iterable[ClusterIdentity | None]
) -> list[ClusterIdentity | None]:
    """The identities a location holds that would be shadowed if a chain of `current` started
    there: non-empty only when it holds copies of other (or unknown) identities and none of
    `current`'s. One entry per identity, in the order met."""
    others: list[ClusterIdentity | None] = []
    for identity in present:
        if same_cluster(current, identity):
            return []
        if uid_of(identity) not in [uid_of(o) for o in others]:
            others.append(identity)
    return others
