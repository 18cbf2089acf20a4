"""Copies under our cluster name that belong to another cluster: finding them at every location,
and what the operator is told about them (run, setup, status, restore).

A replacement node runs a new, empty cluster under the lost one's name; its copies must never
shadow or rotate away the lost cluster's (policy/identity.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from k3s_backup.catalogue.inventory import (
    LOCAL,
    Copy,
    LocalManifests,
    identified_copies,
    local_copies,
)
from k3s_backup.config import Config
from k3s_backup.errors import BackupError
from k3s_backup.formats.cluster_identity import live_database, read_identity
from k3s_backup.policy.identity import ClusterIdentity, describe, same_cluster, uid_of
from k3s_backup.report import plural, shown_time
from k3s_backup.targets.factory import open_target


@dataclass(frozen=True)
class Lineage:
    """The copies of one identity at one location."""

    location: str
    identity: ClusterIdentity | None
    copies: list[Copy]

    @property
    def newest(self) -> Copy:
        return max(self.copies, key=lambda c: c.name)


def local_time(unix: int) -> str:
    return shown_time(unix)


def by_identity(copies: list[Copy]) -> list[list[Copy]]:
    """`copies` grouped by cluster identity, the group with the newest copy first."""
    groups: dict[str | None, list[Copy]] = {}
    for copy in copies:
        groups.setdefault(uid_of(copy.identity), []).append(copy)
    return sorted(groups.values(), key=lambda group: max(c.name for c in group), reverse=True)


def lineages(location: str, copies: list[Copy]) -> list[Lineage]:
    """`copies` (of one location) grouped by identity, newest group first."""
    return [Lineage(location, group[0].identity, group) for group in by_identity(copies)]


def restore_command(location: str) -> str:
    return f"k3s-backup restore --from {location}"


def others_warnings(cluster: str, location: str, others: list[Copy]) -> list[str]:
    """One line per other identity a location holds beside this cluster's copies."""
    where = "this node" if location == LOCAL else location
    warnings = []
    for lineage in lineages(location, others):
        count, newest = len(lineage.copies), local_time(lineage.newest.name.unix)
        if lineage.identity is None:
            warnings.append(
                f"{where} holds {plural(count, 'copy')} of {cluster} of unknown identity (made"
                f" before k3s-backup recorded cluster identities), newest {newest}: kept, never"
                " rotated; if they are this cluster's, `k3s-backup prune --adopt-unknown`"
                " rotates them with it"
            )
        else:
            warnings.append(
                f"{where} holds {plural(count, 'copy')} of another cluster named {cluster}"
                f" ({describe(lineage.identity)}), newest {newest}: if this node replaces a"
                f" lost server, restore them: `{restore_command(location)}`"
            )
    return warnings


def listing(held: dict[str, list[Copy]]) -> list[str]:
    """`  backup-host: cluster 5b0c…, created …, 1234 objects; 3 copies, newest …` lines."""
    lines = []
    for location, copies in held.items():
        for lineage in lineages(location, copies):
            copies_text = plural(len(lineage.copies), "copy")
            lines.append(
                f"  {location}: {describe(lineage.identity)}; {copies_text},"
                f" newest {lineage.newest.name.filename} ({local_time(lineage.newest.name.unix)})"
            )
    return lines


def new_chain_message(
    cluster: str, current: ClusterIdentity, held: dict[str, list[Copy]], flag: str = "run"
) -> str:
    """Why no backup is taken on a node whose cluster is not the one of the copies there."""
    first = next(iter(held))
    return "\n".join(
        [
            f"no backup taken: this node's cluster ({describe(current)}) is not the one whose"
            f" copies of {cluster} are here, and none of its own are:",
            *listing(held),
            "If this node replaces a lost server, restore the lost cluster first:",
            f"  {restore_command(first)}",
            "If this really is a new cluster, give it a new `cluster_name` in the config, or"
            f" start its backups beside the old copies with `k3s-backup {flag} --new-cluster`"
            " (the old copies are kept, never rotated).",
        ]
    )


def split_by_cluster(
    copies: list[Copy], current: ClusterIdentity | None
) -> tuple[list[Copy], list[Copy]]:
    """(the copies of `current`'s cluster, the others)."""
    owned = [c for c in copies if same_cluster(current, c.identity)]
    return owned, [c for c in copies if not same_cluster(current, c.identity)]


def survey(
    config: Config, manifests: LocalManifests, warn: Callable[[str], None]
) -> dict[str, list[Copy]]:
    """Every copy of this cluster name at every location, with identities; a location that
    cannot be read is named through `warn` and left out."""
    local = manifests.local_copies(config.cluster_name)
    known = manifests.known(local)
    held = {LOCAL: local}
    for target_config in config.targets:
        try:
            with open_target(target_config, config.cluster_name) as target:
                held[target.name] = identified_copies(target, config.cluster_name, known)
        except BackupError as exc:
            warn(f"cannot list {target_config.name}: {exc}")
    return held


def current_identity(config: Config, manifests: LocalManifests) -> ClusterIdentity | None:
    """This node's cluster: what its running datastore holds, else what its newest local
    snapshot recorded; None if neither can be read."""
    database = live_database(config.k3s.data_dir)
    if database is not None:
        identity = read_identity(database, config.state_dir)
        if identity is not None:
            return identity
    copies = local_copies(config.snapshot_dir, config.cluster_name)
    return manifests.identity(copies[-1].name) if copies else None
