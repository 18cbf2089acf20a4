"""One pass over an opened snapshot's etcd database: its revision, sizes and live keys, as
inspect reports them and as diff and drill compare them."""

from __future__ import annotations

from dataclasses import dataclass

from k3s_backup.catalogue.opening import OpenedSnapshot
from k3s_backup.formats import kubernetes
from k3s_backup.formats.etcd_db import EtcdDb, LiveState


def show_key(key: bytes) -> str:
    return key.decode(errors="backslashreplace")


def classify(value: bytes) -> str:
    """A value's tag for counts: `encrypted:<provider>` or empty."""
    if kubernetes.is_encrypted(value):
        return f"encrypted:{kubernetes.decode_value(value).provider}"
    return ""


@dataclass(frozen=True)
class Reading:
    """One pass over a snapshot: what inspect, diff and drill report."""

    copy: OpenedSnapshot
    page_size: int
    database_size: int
    revision: int
    compact_revision: int
    consistent_index: int | None
    bucket_entries: int
    state: LiveState


def reading_of(copy: OpenedSnapshot, db: EtcdDb, state: LiveState) -> Reading:
    """The reading of `copy` whose live keys (or only their counts) `state` holds."""
    return Reading(
        copy=copy,
        page_size=db.bolt.meta.page_size,
        database_size=db.bolt.meta.database_size,
        revision=db.revision(state.last_revision),
        compact_revision=db.compact_revision(),
        consistent_index=db.consistent_index(),
        bucket_entries=db.bucket_entries(),
        state=state,
    )


def read_snapshot(copy: OpenedSnapshot, db: EtcdDb, prefix: bytes = b"") -> Reading:
    return reading_of(copy, db, db.live(prefix, classify))
