"""etcd's MVCC store read from a snapshot's bbolt file (see shared/notes/etcd-format.md).

The `key` bucket holds one entry per revision: key = 8-byte big-endian main revision, `_`, 8-byte
sub revision (+ `t` for a tombstone), value = an `mvccpb.KeyValue` protobuf, decoded by hand
(formats/protowire.py, and a specialised scanner for the hot loop; no generated code). The live
state at the latest revision is, for each key, its newest revision unless that is a tombstone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from k3s_backup.formats.bbolt import BoltDB, BoltError
from k3s_backup.formats.protowire import ProtoError, fields
from k3s_backup.plumbing.closable import Closable

KEY_BUCKET = b"key"
META_BUCKET = b"meta"
REVISION_KEY_SIZE = 17
TOMBSTONE_MARK = ord("t")
CLASSIFY_BYTES = 256  # enough for `k8s:enc:<provider>:v1:<key name>:`
_COMPACTION_KEYS = (b"finishedCompactRev", b"scheduledCompactRev")


def signed64(value: int) -> int:
    """A protobuf int64 sent as a varint: two's complement in 64 bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class KeyValue:
    """mvccpb.KeyValue; a tombstone's carries only the key."""

    key: bytes
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    value: bytes = b""
    lease: int = 0


_INT_FIELDS = {2: "create_revision", 3: "mod_revision", 4: "version", 6: "lease"}


def decode_key_value(data: bytes) -> KeyValue:
    decoded: dict[str, int | bytes] = {}
    for number, _wire, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            decoded["key"] = value
        elif number == 5 and isinstance(value, bytes):
            decoded["value"] = value
        elif number in _INT_FIELDS and isinstance(value, int):
            decoded[_INT_FIELDS[number]] = signed64(value)
    if "key" not in decoded:
        raise ProtoError("a KeyValue without a key")
    return KeyValue(**decoded)  # type: ignore[arg-type]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]  # IndexError past the end: reported as damage by the caller
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:  # else a run of 0x80 bytes grows one integer without end: quadratic
            raise ProtoError("varint too long")


def scan_key_value(data: bytes) -> tuple[bytes, int, int, int, int, int]:
    """(key, create_revision, mod_revision, version, value start, value end) of a KeyValue,
    without copying its value: the hot loop of every pass over history."""
    key = b""
    numbers = [0, 0, 0, 0, 0, 0, 0]
    value_start = value_end = pos = 0
    size = len(data)
    try:
        while pos < size:
            tag = data[pos]
            pos += 1
            if tag & 7 == 2:  # length-delimited: key (1) or value (5)
                length, pos = _varint(data, pos)
                if tag >> 3 == 1:
                    key = data[pos : pos + length]
                elif tag >> 3 == 5:
                    value_start, value_end = pos, pos + length
                pos += length
            elif tag & 7 == 0:
                number, pos = _varint(data, pos)
                if tag >> 3 < len(numbers):
                    numbers[tag >> 3] = number
            else:
                raise ProtoError(f"unexpected wire type {tag & 7} in a KeyValue")
    except IndexError:
        raise ProtoError("truncated KeyValue") from None
    if pos != size or not key:
        raise ProtoError("a KeyValue without a key, or overrunning its value")
    return key, signed64(numbers[2]), signed64(numbers[3]), numbers[4], value_start, value_end


def key_of(data: bytes) -> bytes:
    """The key of a KeyValue. etcd (Go's protobuf) writes field 1 first: read it in place, and
    fall back to the full scan for any other layout."""
    if data[:1] == b"\n":  # field 1, length-delimited
        try:
            length, pos = _varint(data, 1)
        except IndexError:
            raise ProtoError("truncated KeyValue") from None
        key = data[pos : pos + length]
        if key and len(key) == length:
            return key
    return scan_key_value(data)[0]


def value_head(revision_key: bytes, raw: bytes) -> bytes:
    """The first CLASSIFY_BYTES of a raw KeyValue's value (what `live`'s classify sees)."""
    try:
        _key, _created, _modified, _version, start, end = scan_key_value(raw)
    except ProtoError as exc:
        raise BoltError(f"damaged KeyValue at revision {revision_key.hex()}: {exc}") from None
    return raw[start : min(end, start + CLASSIFY_BYTES)]


def _decoded(revision_key: bytes, raw: bytes) -> KeyValue:
    try:
        return decode_key_value(raw)
    except ProtoError as exc:
        raise BoltError(f"damaged KeyValue at revision key {revision_key.hex()}: {exc}") from None


@dataclass(frozen=True, order=True)
class Revision:
    main: int
    sub: int
    tombstone: bool = False


def parse_revision_key(key: bytes) -> Revision:
    if len(key) not in (REVISION_KEY_SIZE, REVISION_KEY_SIZE + 1) or key[8:9] != b"_":
        raise BoltError(f"not an etcd revision key: {key.hex()}")
    tombstone = len(key) == REVISION_KEY_SIZE + 1
    if tombstone and key[-1] != TOMBSTONE_MARK:
        raise BoltError(f"not an etcd revision key: {key.hex()}")
    return Revision(int.from_bytes(key[:8], "big"), int.from_bytes(key[9:17], "big"), tombstone)


@dataclass(frozen=True)
class LiveKey:
    """What a live key is at the latest revision, without its value (kept small)."""

    create_revision: int
    mod_revision: int
    version: int
    size: int
    revision_key: bytes  # where its value is: EtcdDb.value_at() reads it on demand
    tag: str  # what the caller's `classify` said of the value's first bytes


@dataclass
class LiveState:
    """The keys alive at the latest revision, and what the pass over history saw."""

    keys: dict[bytes, LiveKey] = field(default_factory=dict)
    revisions: int = 0  # entries in the `key` bucket: history kept since the last compaction
    tombstones: int = 0
    last_revision: int = 0  # main revision of the newest entry


def _untagged(_value: bytes) -> str:
    return ""


class EtcdDb(Closable):
    """An etcd snapshot (or `member/snap/db`) opened read-only; a context manager."""

    def __init__(self, path: Path) -> None:
        self.bolt = BoltDB(path)
        key_bucket = self.bolt.bucket(KEY_BUCKET)
        if key_bucket is None:
            self.bolt.close()
            raise BoltError(f"not an etcd database: {path} has no `key` bucket")
        self._keys = key_bucket

    def close(self) -> None:
        self.bolt.close()

    def history(self) -> Iterator[tuple[Revision, KeyValue]]:
        """Every stored revision, oldest first."""
        for raw_key, raw_value in self._keys.items():
            try:
                yield parse_revision_key(raw_key), decode_key_value(raw_value)
            except ProtoError as exc:
                raise BoltError(
                    f"damaged KeyValue at revision key {raw_key.hex()}: {exc}"
                ) from None

    def live(self, prefix: bytes = b"", classify: Callable[[bytes], str] = _untagged) -> LiveState:
        """Every key under `prefix` alive at the latest revision, in one pass over history.
        `classify` sees the first CLASSIFY_BYTES of each value."""
        state = LiveState()
        keys = state.keys
        for raw_key, raw_value in self._keys.items():
            tombstone = len(raw_key) == REVISION_KEY_SIZE + 1
            if len(raw_key) != REVISION_KEY_SIZE and not tombstone:
                raise BoltError(f"not an etcd revision key: {raw_key.hex()}")
            try:
                key, created, modified, version, start, end = scan_key_value(raw_value)
            except ProtoError as exc:
                raise BoltError(f"damaged KeyValue at revision {raw_key.hex()}: {exc}") from None
            state.revisions += 1
            state.last_revision = int.from_bytes(raw_key[:8], "big")
            if tombstone:
                state.tombstones += 1
                keys.pop(key, None)
            elif key.startswith(prefix):
                head = raw_value[start : min(end, start + CLASSIFY_BYTES)]
                keys[key] = LiveKey(
                    created, modified, version, end - start, raw_key, classify(head)
                )
        return state

    def key_history(
        self, prefix: bytes, seen: LiveState | None = None
    ) -> Iterator[tuple[bytes, bytes, bool, bytes]]:
        """(key, revision key, is a tombstone, raw KeyValue) of every stored revision of a key
        under `prefix`, oldest first; only keys are decoded (what is alive is known at the
        end). `seen` counts every revision, tombstone and the newest revision, as `live` does."""
        for raw_key, raw_value in self._keys.items():
            tombstone = len(raw_key) == REVISION_KEY_SIZE + 1
            if len(raw_key) != REVISION_KEY_SIZE and not tombstone:
                raise BoltError(f"not an etcd revision key: {raw_key.hex()}")
            try:
                key = key_of(raw_value)
            except ProtoError as exc:
                raise BoltError(f"damaged KeyValue at revision {raw_key.hex()}: {exc}") from None
            if seen is not None:
                seen.revisions += 1
                seen.tombstones += tombstone
                seen.last_revision = int.from_bytes(raw_key[:8], "big")
            if key.startswith(prefix):
                yield key, raw_key, tombstone, raw_value

    def census(self, prefix: bytes, wanted: bytes) -> tuple[set[bytes], bytes | None]:
        """The keys under `prefix` alive at the latest revision, and the raw KeyValue of
        `wanted` there (None if absent or deleted), in one pass that decodes only keys: what
        `live` learns, at a fraction of its cost (run reads every snapshot's identity)."""
        alive: set[bytes] = set()
        found: bytes | None = None
        for raw_key, raw_value in self._keys.items():
            key = key_of(raw_value)
            if not key.startswith(prefix):
                continue
            if len(raw_key) == REVISION_KEY_SIZE + 1:  # a tombstone
                alive.discard(key)
                if key == wanted:
                    found = None
            else:
                alive.add(key)
                if key == wanted:
                    found = raw_value
        return alive, found

    def value_at(self, revision_key: bytes) -> KeyValue:
        """The KeyValue stored at one revision (a LiveKey's `revision_key`)."""
        raw = self._keys.get(revision_key)
        if raw is None:
            raise BoltError(f"no revision {revision_key.hex()} in the key bucket")
        return _decoded(revision_key, raw)

    def latest(self, key: bytes) -> tuple[Revision, KeyValue] | None:
        """The newest stored revision of `key` (possibly a tombstone), or None. Other keys'
        values are skipped, not decoded."""
        found = None
        for raw_key, raw_value in self._keys.items():
            try:
                matches = scan_key_value(raw_value)[0] == key
            except ProtoError as exc:
                raise BoltError(f"damaged KeyValue at revision {raw_key.hex()}: {exc}") from None
            if matches:
                found = (raw_key, raw_value)
        if found is None:
            return None
        return parse_revision_key(found[0]), _decoded(found[0], found[1])

    def get(self, key: bytes) -> KeyValue | None:
        """`key` at the latest revision, or None if absent or deleted."""
        found = self.latest(key)
        return None if found is None or found[0].tombstone else found[1]

    def _meta_revision(self, name: bytes) -> int:
        meta = self.bolt.bucket(META_BUCKET)
        raw = meta.get(name) if meta else None
        return parse_revision_key(raw).main if raw else 0

    def compact_revision(self) -> int:
        """The revision history was compacted at (0 if never)."""
        return max(self._meta_revision(name) for name in _COMPACTION_KEYS)

    def consistent_index(self) -> int | None:
        meta = self.bolt.bucket(META_BUCKET)
        raw = meta.get(b"consistent_index") if meta else None
        return int.from_bytes(raw, "big") if raw and len(raw) == 8 else None

    def bucket_entries(self) -> int:
        return sum(bucket.count() for _name, bucket in self.bolt.root.buckets())

    def revision(self, last_revision: int) -> int:
        """The store's revision: the newest entry's, raised to the compaction revision."""
        return max(last_revision, self.compact_revision())
