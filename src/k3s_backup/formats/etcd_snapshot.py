"""Integrity of an etcd snapshot file without any etcd binary (see shared/notes/etcd-format.md).

A snapshot is a bbolt database followed by a 32-byte SHA-256 of the database bytes. `etcdctl
snapshot status` does not check that hash, so we do: trailer, bbolt meta pages and size.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from k3s_backup.errors import SnapshotError
from k3s_backup.plumbing.streams import Readable

TRAILER_SIZE = 32
BOLT_MAGIC = 0xED0CDAED
_PAGE_HEADER = 16
_META = struct.Struct("<IIII QQ QQQ Q")  # magic version pageSize flags root seq freelist hwm txid
_CHUNK = 1 << 20
# What zipfile raises on a damaged or crafted archive (NotImplementedError: an unknown
# compression method; RuntimeError: an encrypted entry; ValueError: a bad header field;
# OSError: an offset before the file's start, found by fuzzing).
ZIP_ERRORS = (
    OSError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    ValueError,
)


@dataclass(frozen=True)
class SnapshotCheck:
    size: int  # bytes of the plain snapshot (database + trailer)
    sha256: str  # of the whole plain snapshot file
    page_size: int
    txid: int


def _fnv1a64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _meta(page: bytes) -> tuple[int, int, int] | None:
    """(pageSize, high-water pgid, txid) of a valid meta page, or None."""
    if len(page) < _PAGE_HEADER + _META.size:
        return None
    fields = _META.unpack_from(page, _PAGE_HEADER)
    magic, version, page_size, *_rest = fields
    hwm, txid, checksum = fields[7], fields[8], fields[9]
    if magic != BOLT_MAGIC or version != 2:
        return None
    covered = page[_PAGE_HEADER : _PAGE_HEADER + _META.size - 8]
    if _fnv1a64(covered) != checksum:
        return None
    return page_size, hwm, txid


def _best_meta(head: bytes) -> tuple[int, int, int]:
    first = _meta(head)
    if first is None:
        raise SnapshotError("not an etcd snapshot: the first bbolt meta page is invalid")
    page_size = first[0]
    second = _meta(head[page_size : page_size * 2])
    candidates = [m for m in (first, second) if m is not None]
    return max(candidates, key=lambda m: m[2])


def check_stream(stream: Readable, size: int) -> SnapshotCheck:
    """Check a plain snapshot read from `stream` of `size` bytes; raise SnapshotError if bad."""
    if size < TRAILER_SIZE + 2 * 4096 or size % 512 != TRAILER_SIZE:
        raise SnapshotError(
            f"not an etcd snapshot with a SHA-256 trailer: size {size} is not 512*n+32"
        )
    db_hash = hashlib.sha256()
    head = b""
    remaining = size - TRAILER_SIZE
    while remaining:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            raise SnapshotError(f"snapshot is truncated: {remaining} bytes missing")
        if len(head) < 2 * 65536:
            head += chunk[: 2 * 65536 - len(head)]
        db_hash.update(chunk)
        remaining -= len(chunk)
    trailer = stream.read(TRAILER_SIZE)
    file_hash = db_hash.copy()  # the file's hash continues the database's: one pass, not two
    file_hash.update(trailer)
    if trailer != db_hash.digest():
        raise SnapshotError("snapshot SHA-256 trailer does not match its contents (corrupted)")
    page_size, hwm, txid = _best_meta(head)
    if (size - TRAILER_SIZE) != hwm * page_size:
        raise SnapshotError(
            f"snapshot size {size - TRAILER_SIZE} does not match bbolt's {hwm} pages"
            f" of {page_size} bytes (truncated or padded)"
        )
    return SnapshotCheck(size=size, sha256=file_hash.hexdigest(), page_size=page_size, txid=txid)


def check_plain(path: Path) -> SnapshotCheck:
    with path.open("rb") as stream:
        return check_stream(stream, path.stat().st_size)


def check_zip(path: Path) -> SnapshotCheck:
    """A K3s `.zip` holds exactly one entry named like the file without `.zip`."""
    expected = path.name.removesuffix(".zip")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if [info.filename for info in infos] != [expected]:
                names = [info.filename for info in infos]
                raise SnapshotError(f"zip snapshot must hold exactly {expected!r}, found {names}")
            with archive.open(infos[0]) as member:
                return check_stream(member, infos[0].file_size)
    except ZIP_ERRORS as exc:
        raise SnapshotError(f"zip snapshot is damaged: {exc}") from exc


def check_file(path: Path) -> SnapshotCheck:
    """Check a snapshot file as K3s writes it: plain, or `.zip` (checked inside)."""
    try:
        if path.name.endswith(".zip"):
            return check_zip(path)
        return check_plain(path)
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from exc
