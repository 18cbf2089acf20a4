"""Our snapshot names: built, recognised and ordered here, with no I/O.

`k3s etcd-snapshot save --name <cluster>-<YYYYmmdd-HHMMSS>` makes
`<cluster>-<YYYYmmdd-HHMMSS>-<node>-<unix>` (+ `.zip` when compressed). The node name may hold
`-` and `.`, so only the last `-` field is reliably the unix time. A file that does not match this
exact shape for our cluster is not ours and is never touched: ASCII digits only (`\\d` would
accept any Unicode digit), and a stamp that is no real date and time is not ours either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

CLUSTER_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
K3S_OWN_PREFIX = "etcd-snapshot"
MANIFEST_SUFFIX = ".json"
BUNDLE_SUFFIX = ".bundle.tar"  # the restore bundle (token, K3s config) beside each snapshot
STAMP_FORMAT = "%Y%m%d-%H%M%S"
# What may follow the unix time: K3s's `.zip` or our SQLite `.db` (the local file), then the
# storage form a target adds (`.zst` or `.zip` compression, `.age` encryption).
_STORED_SUFFIX = r"(?:\.db)?(?:\.zip|\.zst)?(?:\.age)?"


@dataclass(frozen=True, order=True)
class SnapshotName:
    """A parsed name of ours; ordering is by the times in the name, never by mtime."""

    unix: int
    stamp: str
    node: str
    cluster: str
    suffix: str
    filename: str

    @property
    def base(self) -> str:
        """The name without a compression suffix (the name inside a K3s `.zip`)."""
        return self.filename[: len(self.filename) - len(self.suffix)]


def snapshot_prefix(cluster: str, when: datetime) -> str:
    """The `--name` passed to K3s: unique per second and per cluster."""
    return f"{cluster}-{when.strftime(STAMP_FORMAT)}"


def _pattern(cluster: str) -> re.Pattern[str]:
    return re.compile(
        rf"^{re.escape(cluster)}-(?P<stamp>[0-9]{{8}}-[0-9]{{6}})-(?P<node>[A-Za-z0-9._-]+?)"
        rf"-(?P<unix>[0-9]{{1,12}})(?P<suffix>{_STORED_SUFFIX})",
        re.ASCII,
    )


def stamp_time(stamp: str) -> datetime | None:
    """The local time a name's stamp says, or None if it is no real date and time."""
    try:
        return datetime.strptime(stamp, STAMP_FORMAT)
    except ValueError:
        return None


def parse(cluster: str, filename: str) -> SnapshotName | None:
    """The parsed name if `filename` is one of our snapshots for `cluster`, else None."""
    match = _pattern(cluster).fullmatch(filename)
    if match is None or stamp_time(match["stamp"]) is None:
        return None
    return SnapshotName(
        unix=int(match["unix"]),
        stamp=match["stamp"],
        node=match["node"],
        cluster=cluster,
        suffix=match["suffix"] or "",
        filename=filename,
    )


def is_ours(cluster: str, filename: str) -> bool:
    return parse(cluster, filename) is not None


def manifest_name(filename: str) -> str:
    return filename + MANIFEST_SUFFIX


def _snapshot_before(cluster: str, filename: str, suffix: str) -> str | None:
    """The snapshot of ours `filename` is named after, if it is that name plus `suffix`."""
    if not filename.endswith(suffix):
        return None
    snapshot = filename[: -len(suffix)]
    return snapshot if is_ours(cluster, snapshot) else None


def snapshot_of_manifest(cluster: str, filename: str) -> str | None:
    """The snapshot a manifest belongs to, if `filename` is a manifest of ours."""
    return _snapshot_before(cluster, filename, MANIFEST_SUFFIX)


def bundle_name(filename: str) -> str:
    return filename + BUNDLE_SUFFIX


def snapshot_of_bundle(cluster: str, filename: str) -> str | None:
    """The snapshot a restore bundle belongs to, if `filename` is a bundle of ours."""
    return _snapshot_before(cluster, filename, BUNDLE_SUFFIX)


def snapshot_of_sidecar(cluster: str, filename: str) -> str | None:
    """The snapshot a manifest or restore bundle of ours belongs to."""
    return snapshot_of_manifest(cluster, filename) or snapshot_of_bundle(cluster, filename)


def is_our_file(cluster: str, filename: str) -> bool:
    """A copy, manifest or restore bundle of this cluster: the names a target or the backup
    host's service may touch."""
    return is_ours(cluster, filename) or snapshot_of_sidecar(cluster, filename) is not None


def ours(cluster: str, filenames: list[str]) -> list[SnapshotName]:
    """Our snapshots among `filenames`, oldest first."""
    parsed = (parse(cluster, name) for name in filenames)
    return sorted(name for name in parsed if name is not None)


def produced_by(prefix: str, cluster: str, filenames: list[str]) -> list[SnapshotName]:
    """The files a `save --name <prefix>` produced: our names that start with `<prefix>-`."""
    return [name for name in ours(cluster, filenames) if name.filename.startswith(prefix + "-")]


def cluster_name_problem(cluster: str) -> str | None:
    """Why `cluster` cannot be used as a name prefix, or None if it can."""
    if not CLUSTER_NAME_RE.fullmatch(cluster):
        return "may only contain letters, digits, '.', '_' and '-'"
    if cluster.startswith(K3S_OWN_PREFIX):
        return f"must not start with {K3S_OWN_PREFIX!r} (K3s's own snapshot prefix)"
    return None
