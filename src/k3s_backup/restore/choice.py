"""Which copy to restore when copies of several clusters share a cluster name (a rebuilt
cluster, a copied config): never the newest across clusters; `--cluster` names one (its
kube-system UID or the UID's start, `unknown`, `none`), else the operator chooses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from k3s_backup.catalogue.clusters import by_identity, local_time
from k3s_backup.catalogue.inventory import Copy
from k3s_backup.config import Config
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.formats.cluster_identity import live_database, read_identity
from k3s_backup.policy.identity import ClusterIdentity, describe


class ClusterChoiceError(BackupError):
    """No copy of the cluster named, or several clusters and nobody chose: a usage error."""

    exit_code = ExitCode.USAGE


def one_cluster(
    candidates: list[Copy],
    cluster: str | None,
    latest: bool,
    ask: Callable[[str], str] | None,
    cluster_name: str,
) -> list[Copy]:
    """The copies of one cluster: the one `cluster` names, or the only one there; with several
    and `latest`, the one the operator picks through `ask` (None: nobody to ask, --yes)."""
    if cluster is not None:
        chosen = [c for c in candidates if matches(c.identity, cluster)]
        if not chosen:
            raise ClusterChoiceError(
                f"no copy of cluster {cluster!r}; these clusters have copies:\n"
                + "\n".join(cluster_lines(candidates))
            )
        return chosen
    groups = by_identity(candidates)
    if not latest or len(groups) < 2:
        return candidates
    question = (
        f"Copies of {len(groups)} different clusters named {cluster_name} are here; restore"
        " which?\n" + "\n".join(cluster_lines(candidates)) + "\n"
    )
    if ask is not None:
        answer = ask(question + f"Number (1-{len(groups)}): ")
        if answer.isdigit() and 1 <= int(answer) <= len(groups):
            return groups[int(answer) - 1]
    raise ClusterChoiceError(
        question + "Name the copy (`k3s-backup restore NAME`) or the cluster (`--cluster"
        " UID`, `--cluster unknown` for copies made before identities were recorded)"
    )


def matches(identity: ClusterIdentity | None, wanted: str) -> bool:
    if wanted == "unknown":
        return identity is None
    if wanted == "none":
        return identity is not None and not identity.kubernetes
    return identity is not None and identity.kubernetes and identity.uid.startswith(wanted)


def cluster_lines(candidates: list[Copy]) -> list[str]:
    lines = []
    for number, group in enumerate(by_identity(candidates), 1):
        newest = max(group, key=lambda c: c.name)
        where = ", ".join(dict.fromkeys(c.location for c in group if c.snapshot == newest.snapshot))
        lines.append(
            f"  {number}. {describe(newest.identity)}: newest {newest.snapshot}"
            f" ({local_time(newest.name.unix)}) on {where}"
        )
    return lines


Holding = tuple[Path | None, ClusterIdentity | None]  # the live database, and its identity


def node_holding(config: Config) -> Holding:
    """What this node's datastore holds now (reading it takes a while: run it meanwhile)."""
    database = live_database(config.k3s.data_dir)
    return database, read_identity(database, config.state_dir) if database else None


def holdings(
    snapshot_file: Path, recorded: tuple[ClusterIdentity | None] | None, holding: Holding
) -> tuple[list[str], str | None]:
    """The plan's lines on which cluster the snapshot and this node hold, and a warning when
    the snapshot is of another cluster than the one this node runs. `recorded`: the identity
    an authenticated manifest records for these bytes (else read from the file)."""
    if recorded is not None:
        snapshot = recorded[0]
    else:
        snapshot = read_identity(snapshot_file, snapshot_file.parent)
    database, current = holding
    now = describe(current) if database else "nothing (no datastore on this node yet)"
    if current is None and database:
        now = f"unknown ({database} could not be read)"
    lines = [f"  the snapshot holds:     {describe(snapshot)}", f"  this node now holds:    {now}"]
    if snapshot and current and snapshot.uid != current.uid and current.kubernetes:
        return lines, (
            "the snapshot is of another cluster than the one this node runs now: the"
            " current cluster is replaced as a whole"
        )
    return lines, None
