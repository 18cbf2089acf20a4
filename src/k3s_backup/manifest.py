"""The small JSON manifest stored beside every copy: what it is and how to check it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from k3s_backup import __version__
from k3s_backup.policy.naming import SnapshotName

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    name: str
    cluster: str
    node: str
    source: str
    created: str  # UTC, ISO 8601
    size: int
    sha256: str
    compression: str  # "zip" when K3s compressed it, else "none"
    tool_version: str = __version__
    format: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        fields = {key: raw[key] for key in cls.__dataclass_fields__ if key in raw}
        return cls(**fields)


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
        compression="zip" if name.suffix == ".zip" else "none",
    )
