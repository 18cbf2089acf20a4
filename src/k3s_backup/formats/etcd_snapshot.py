"""Integrity of an etcd snapshot file without any etcd binary (see shared/notes/etcd-format.md).

A snapshot is a bbolt database followed by a 32-byte SHA-256 of the database bytes. `etcdctl
snapshot status` does not check that hash, so we do: trailer, bbolt meta pages and size.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from k3s_backup.errors import SnapshotError
from k3s_backup.plumbing.streams import Readable

TRAILER_SIZE = 32
BOLT_MAGIC = 0xED0CDAED
_PAGE_HEADER = 16
_META = struct.Struct("<IIII QQ QQQ Q")  # magic version pageSize flags root seq freelist hwm txid
_CHUNK = 1 << 20
_HEAD = 2 * 65536  # both meta pages, for page sizes up to 64 KiB
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


def _check_size(size: int) -> None:
    if size < TRAILER_SIZE + 2 * 4096 or size % 512 != TRAILER_SIZE:
        raise SnapshotError(
            f"not an etcd snapshot with a SHA-256 trailer: size {size} is not 512*n+32"
        )


def _check_pages(size: int, head: bytes) -> tuple[int, int]:
    """(pageSize, txid) from the meta pages in `head`, which must count the file's pages."""
    page_size, hwm, txid = _best_meta(head)
    if (size - TRAILER_SIZE) != hwm * page_size:
        raise SnapshotError(
            f"snapshot size {size - TRAILER_SIZE} does not match bbolt's {hwm} pages"
            f" of {page_size} bytes (truncated or padded)"
        )
    return page_size, txid


class TrailerCheck:
    """The whole check of a plain snapshot on its bytes as they pass, in order (`update`), for
    bytes read or written for another purpose (sent to a target, received from etcd): no pass
    of its own. The last 32 bytes seen are held back: they are the trailer once it ends."""

    def __init__(self) -> None:
        self.size = 0
        self._db_hash = hashlib.sha256()
        self._head = bytearray()
        self._tail = b""

    def update(self, data: bytes) -> None:
        self.size += len(data)
        if len(self._head) < _HEAD:
            self._head += data[: _HEAD - len(self._head)]
        if len(data) >= TRAILER_SIZE:
            view = memoryview(data)
            self._db_hash.update(self._tail)
            self._db_hash.update(view[:-TRAILER_SIZE])
            self._tail = bytes(view[-TRAILER_SIZE:])
            return
        joined = self._tail + data
        cut = max(0, len(joined) - TRAILER_SIZE)
        self._db_hash.update(joined[:cut])
        self._tail = joined[cut:]

    def result(self) -> SnapshotCheck:
        """The check of everything fed so far as a whole snapshot; SnapshotError if bad."""
        _check_size(self.size)
        if self._tail != self._db_hash.digest():
            raise SnapshotError("snapshot SHA-256 trailer does not match its contents (corrupted)")
        file_hash = self._db_hash.copy()  # the file's hash continues the database's
        file_hash.update(self._tail)
        page_size, txid = _check_pages(self.size, bytes(self._head))
        return SnapshotCheck(self.size, file_hash.hexdigest(), page_size, txid)


def check_stream(stream: Readable, size: int) -> SnapshotCheck:
    """Check a plain snapshot read from `stream` of `size` bytes; raise SnapshotError if bad."""
    _check_size(size)  # before reading anything
    check = TrailerCheck()
    remaining = size
    while remaining:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            raise SnapshotError(f"snapshot is truncated: {remaining} bytes missing")
        check.update(chunk)
        remaining -= len(chunk)
    return check.result()


@contextmanager
def naming_file(path: Path) -> Iterator[None]:
    """A SnapshotError within names `path`, the file whose bytes were checked."""
    try:
        yield
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from exc


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
    with naming_file(path):
        if path.name.endswith(".zip"):
            return check_zip(path)
        return check_plain(path)


def check_before_reading(path: Path) -> SnapshotCheck | None:
    """A snapshot file as far as it is checked before it is first read whole: a `.zip` whole
    (its entry is unpacked to be checked); a plain one by its size and bbolt meta pages alone,
    returning None: its SHA-256 trailer is then checked as it is first read (TrailerCheck),
    so the plain bytes are read and hashed once."""
    if path.name.endswith(".zip"):
        return check_file(path)
    with naming_file(path), path.open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        _check_size(size)
        _check_pages(size, stream.read(_HEAD))
    return None
