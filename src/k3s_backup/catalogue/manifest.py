"""The small JSON manifest stored beside every copy: what it is and how to check it."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, replace
from datetime import UTC, datetime

from k3s_backup import __version__
from k3s_backup.policy.identity import ClusterIdentity
from k3s_backup.policy.naming import SnapshotName

FORMAT_VERSION = 1
MAX_MANIFEST = 64 << 10  # ours are ~600 bytes: anything bigger is not a manifest of ours
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "str | None": (str, type(None)),
}


class ManifestError(ValueError):
    """Bytes that are not a manifest of ours (a ValueError, as json's own errors are)."""


@dataclass(frozen=True)
class Manifest:
    name: str
    cluster: str
    node: str
    source: str
    created: str  # UTC, ISO 8601
    size: int
    sha256: str
    compression: str  # what the target applied: "none", "zstd" or "zip"
    tool_version: str = __version__
    format: int = FORMAT_VERSION
    # The stored form (name, size, sha256 above) may be compressed and encrypted; these describe
    # the local snapshot file it decodes to. Empty/-1 in older manifests: the same as stored.
    snapshot: str = ""
    encryption: str = "none"  # "none" or "age"
    plain_size: int = -1
    plain_sha256: str = ""
    # The cluster the snapshot belongs to (policy/identity.py): None in manifests made before
    # identities were recorded (unknown), "" for a snapshot without Kubernetes data.
    cluster_uid: str | None = None
    cluster_created: str = ""
    objects: int = -1
    bundle_sha256: str = ""  # of the restore bundle (before encryption), "" if none shipped
    # HMAC-SHA256 over every other field, by a key derived from the cluster's recovery key
    # (recovery_key.py); "" in manifests made without one: unauthenticated.
    mac: str = ""

    @property
    def identity(self) -> ClusterIdentity | None:
        if not isinstance(self.cluster_uid, str):  # None, or not what we write: unknown
            return None
        created = self.cluster_created if isinstance(self.cluster_created, str) else ""
        objects = self.objects if isinstance(self.objects, int) else 0
        return ClusterIdentity(self.cluster_uid, created, max(objects, 0))

    def with_identity(self, identity: ClusterIdentity | None) -> Manifest:
        if identity is None:
            return replace(self, cluster_uid=None, cluster_created="", objects=-1)
        return replace(
            self,
            cluster_uid=identity.uid,
            cluster_created=identity.created,
            objects=identity.objects,
        )

    def __post_init__(self) -> None:
        if not self.snapshot:
            object.__setattr__(self, "snapshot", self.name)
        if self.plain_size < 0:
            object.__setattr__(self, "plain_size", self.size)
        if not self.plain_sha256:
            object.__setattr__(self, "plain_sha256", self.sha256)

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """The manifest in `data`; ValueError (ManifestError, or json's) if it is not one:
        read from targets others can write, so every field is checked for its type."""
        try:
            raw = json.loads(data)
        except RecursionError:
            raise ManifestError("not a manifest: JSON nested too deeply") from None
        if not isinstance(raw, dict):
            raise ManifestError(f"not a manifest: a JSON {type(raw).__name__}, not an object")
        fields: dict[str, object] = {}
        for key, field in cls.__dataclass_fields__.items():
            if key not in raw:
                if field.default is MISSING:
                    raise ManifestError(f"not a manifest: no {key!r}")
                continue
            value, wanted = raw[key], _FIELD_TYPES[str(field.type)]
            if not isinstance(value, wanted) or isinstance(value, bool):
                names = " or ".join("null" if t is type(None) else t.__name__ for t in wanted)
                raise ManifestError(f"{key!r} must be a JSON {names}, not {value!r:.40}")
            fields[key] = value
        return cls(**fields)  # type: ignore[arg-type]


def created_iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def for_snapshot(name: SnapshotName, source: str, size: int, sha256: str) -> Manifest:
    return Manifest(
        name=name.filename,
        cluster=name.cluster,
        node=name.node,
        source=source,
        created=created_iso(name.unix),
        size=size,
        sha256=sha256,
        compression="none",
    )
