"""What each location holds of ours: snapshots, their manifests, and local manifest records.

K3s treats every file in its snapshot dir as a snapshot, so manifests of local snapshots live in
`<state_dir>/manifests/`, never beside the snapshots.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from k3s_backup.catalogue.manifest import MAX_MANIFEST, Manifest, for_snapshot
from k3s_backup.config import Config
from k3s_backup.errors import BackupError, TargetError, TargetUnreachable
from k3s_backup.formats.cluster_identity import read_identity
from k3s_backup.plumbing.atomic import write_json_atomic
from k3s_backup.plumbing.streams import RefusedInput, read_regular, sha256_stream
from k3s_backup.policy import naming
from k3s_backup.policy.identity import ClusterIdentity
from k3s_backup.sources.factory import choose_source
from k3s_backup.targets.base import StoredObject, Target

LOCAL = "local"


@dataclass(frozen=True)
class Copy:
    """A copy of one of our snapshots at one location (this node or a target), as listed."""

    name: naming.SnapshotName  # the stored file's name (`.zst`, `.age`, ... on a target)
    location: str  # LOCAL or a target's name
    size: int
    has_manifest: bool
    has_bundle: bool = False
    identity: ClusterIdentity | None = None  # None: unknown (see with_identities)

    @property
    def snapshot(self) -> str:
        """The snapshot's name without any suffix: the same for every stored form of it."""
        return self.name.base


def copies_in(objects: list[StoredObject], cluster: str, location: str) -> list[Copy]:
    """Our snapshots among `objects`, oldest first, each with whether its manifest and its
    restore bundle are there."""
    names = {obj.name for obj in objects}
    sizes = {obj.name: obj.size for obj in objects}
    return [
        Copy(
            name,
            location,
            sizes[name.filename],
            naming.manifest_name(name.filename) in names,
            naming.bundle_name(name.filename) in names,
        )
        for name in naming.ours(cluster, list(names))
    ]


def target_copies(target: Target, cluster: str) -> list[Copy]:
    return copies_in(target.list(), cluster, target.name)


def local_copies(snapshot_dir: Path, cluster: str) -> list[Copy]:
    try:
        objects = [
            StoredObject(e.name, e.stat().st_size) for e in os.scandir(snapshot_dir) if e.is_file()
        ]
    except FileNotFoundError:
        objects = []
    return copies_in(objects, cluster, LOCAL)


def read_target_manifest(target: Target, filename: str) -> Manifest:
    """The manifest beside `filename`, refused when larger than MAX_MANIFEST."""
    buffer = io.BytesIO()
    try:
        target.get(naming.manifest_name(filename), buffer, MAX_MANIFEST)
    except RefusedInput as exc:
        raise TargetError(
            f"{target.name}: manifest of {filename} refused: {exc}; a manifest is never over"
            f" {MAX_MANIFEST} bytes"
        ) from None
    try:
        return Manifest.from_json(buffer.getvalue())
    except (ValueError, TypeError, KeyError) as exc:
        raise TargetError(f"{target.name}: manifest of {filename} is unreadable: {exc}") from None


def with_identities(
    target: Target, copies: list[Copy], known: dict[str, ClusterIdentity | None]
) -> list[Copy]:
    """`copies` with the cluster identity their manifests record; a manifest of an older
    version without one takes the identity of the same snapshot in `known` (this node's own
    manifests, by snapshot name), else stays unknown. A manifest that cannot be read: unknown;
    a failed link is raised (TargetUnreachable), for the caller's work to be tried again."""
    found = []
    for copy in copies:
        identity = None
        if copy.has_manifest:
            try:
                manifest = read_target_manifest(target, copy.name.filename)
            except TargetUnreachable:
                raise  # not this manifest's fault: the caller's work is tried again
            except TargetError:
                manifest = None
            if manifest is not None:
                identity = manifest.identity or known.get(manifest.snapshot)
        found.append(replace(copy, identity=identity))
    return found


def local_bundle_path(state_dir: Path, filename: str) -> Path:
    """Where the restore bundle of a local snapshot is kept (not in K3s's snapshot dir)."""
    return state_dir / "bundles" / naming.bundle_name(filename)


def identified_copies(
    target: Target, cluster: str, known: dict[str, ClusterIdentity | None]
) -> list[Copy]:
    """The target's copies of `cluster`, with identities (with_identities)."""
    return with_identities(target, target_copies(target, cluster), known)


class LocalManifests:
    """Manifests of the snapshots in K3s's snapshot dir, kept under state_dir."""

    def __init__(self, state_dir: Path, snapshot_dir: Path, source: str) -> None:
        self.state_dir = state_dir
        self.directory = state_dir / "manifests"
        self.snapshot_dir = snapshot_dir
        self.source = source
        # filename -> identity of a snapshot just taken whose check is to come as it is first
        # read (backup/unchecked.py): recorded then, never made up from its unchecked bytes
        self._awaited: dict[str, ClusterIdentity | None] = {}

    def _path(self, filename: str) -> Path:
        return self.directory / naming.manifest_name(filename)

    def await_check(self, name: naming.SnapshotName, identity: ClusterIdentity | None) -> None:
        self._awaited[name.filename] = identity

    def save(self, manifest: Manifest) -> None:
        write_json_atomic(self._path(manifest.name), json.loads(manifest.to_json()))
        self._awaited.pop(manifest.name, None)

    def recorded(self, name: naming.SnapshotName) -> Manifest | None:
        """The manifest recorded when the snapshot was made, or None if there is none (or it
        does not parse); RefusedInput if it is a symlink or larger than MAX_MANIFEST."""
        path = self._path(name.filename)
        try:
            return Manifest.from_json(read_regular(path, MAX_MANIFEST, f"manifest {path}"))
        except (FileNotFoundError, ValueError, TypeError, KeyError):
            return None

    def get(self, name: naming.SnapshotName) -> Manifest:
        """The recorded manifest, or one computed from the file (made before we recorded it)."""
        recorded = self.recorded(name)
        if recorded is not None:
            return recorded
        if name.filename in self._awaited:
            raise BackupError(f"{name.filename} is not checked yet: it has no manifest")
        path = self.snapshot_dir / name.filename
        with path.open("rb") as stream:
            digest = sha256_stream(stream)
        manifest = for_snapshot(name, self.source, path.stat().st_size, digest)
        self.save(manifest)
        return manifest

    def identity(self, name: naming.SnapshotName) -> ClusterIdentity | None:
        """The identity of a local snapshot: recorded in its manifest, else read from the file
        once (a manifest of an older version) and recorded. A record we refuse to read (a
        planted symlink or directory) costs the run nothing: the file itself decides."""
        if name.filename in self._awaited:
            return self._awaited[name.filename]
        try:
            manifest = self.get(name)
        except BackupError:
            return read_identity(self.snapshot_dir / name.filename, self.state_dir)
        if manifest.cluster_uid is not None:
            return manifest.identity
        identity = read_identity(self.snapshot_dir / name.filename, self.state_dir)
        if identity is not None:
            self.save(manifest.with_identity(identity))
        return identity

    def with_identities(self, copies: list[Copy]) -> list[Copy]:
        return [replace(copy, identity=self.identity(copy.name)) for copy in copies]

    def local_copies(self, cluster: str) -> list[Copy]:
        """This node's copies of `cluster`, with the identities their manifests record."""
        return self.with_identities(local_copies(self.snapshot_dir, cluster))

    def known(self, copies: list[Copy]) -> dict[str, ClusterIdentity | None]:
        """Snapshot name -> identity, for the local copies: what a target's older manifests
        lack."""
        return {copy.name.filename: copy.identity for copy in copies}

    def forget(self, filename: str) -> None:
        """Drop what we keep about a rotated snapshot: its manifest and its restore bundle."""
        self._awaited.pop(filename, None)
        self._path(filename).unlink(missing_ok=True)
        local_bundle_path(self.state_dir, filename).unlink(missing_ok=True)


def local_manifests(config: Config) -> LocalManifests:
    """This node's manifest records; one computed for a snapshot made before we recorded them
    names the configured source (`auto` resolved as `run` resolves it), not a guess."""
    return LocalManifests(config.state_dir, config.snapshot_dir, choose_source(config).kind)
