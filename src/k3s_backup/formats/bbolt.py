"""A read-only bbolt reader over a memory-mapped file (see shared/notes/etcd-format.md).

PyPI's `boltdb` opens files read-write and creates a database on a wrong path: unusable for
backups. This reader maps the file with ACCESS_READ, so it cannot write, and walks the B+tree
page by page: memory stays far below the file size (pages already read are dropped from the
mapping every few MiB, so even the resident set stays small).

It reads files others wrote, so it is total: every offset is checked before it is read, a walk
refuses a branch page it has already entered (a cycle) and a tree deeper than MAX_DEPTH, and the
bytes of pages one walk visits are bounded by the database size (a tree visits each page once),
so any damaged or crafted file ends in a BoltError, quickly.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from k3s_backup.errors import SnapshotError
from k3s_backup.plumbing.closable import Closable

MAGIC = 0xED0CDAED
VERSION = 2
PAGE_HEADER_SIZE = 16
ELEMENT_SIZE = 16
BUCKET_HEADER_SIZE = 16
BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
BUCKET_LEAF_FLAG = 0x01
# bbolt reads meta page 1 at these offsets when meta page 0 is unreadable.
_FALLBACK_PAGE_SIZES = (4096, 8192, 16384, 32768, 65536)
_PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
_META = struct.Struct("<IIIIQQQQQQ")  # magic version pageSize flags root seq freelist hwm txid sum
_BRANCH_ELEMENT = struct.Struct("<IIQ")  # pos, ksize, pgid
_LEAF_ELEMENT = struct.Struct("<IIII")  # flags, pos, ksize, vsize
_BUCKET_HEADER = struct.Struct("<QQ")  # root pgid, sequence
_DROP_EVERY = 8 << 20  # release mapped pages after this many bytes of pages visited
# Linux maps up to this much of the page cache around each faulting page (fault_around_bytes):
# a lookup that visits scattered pages makes 16x their size resident, so each visit counts as
# at least this much (without it, extract's reads in apply order kept up to 20 MiB more).
_FAULT_AROUND = 64 << 10
# bbolt splits a page in two when it fills, so a tree of 2^64 pages is at most 64 levels deep.
MAX_DEPTH = 64
MIN_PAGE_SIZE, MAX_PAGE_SIZE = 512, 1 << 20


class BoltError(SnapshotError):
    """The file is not a bbolt database, or is damaged or truncated."""


@dataclass(frozen=True)
class Meta:
    page_size: int
    root_pgid: int
    freelist_pgid: int
    high_water_pgid: int
    txid: int

    @property
    def database_size(self) -> int:
        return self.high_water_pgid * self.page_size


def _fnv1a64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _parse_meta(buffer: mmap.mmap, offset: int) -> Meta | None:
    """The meta page at `offset`, or None if it is absent or fails its checksum."""
    end = offset + PAGE_HEADER_SIZE + _META.size
    if offset < 0 or end > len(buffer):
        return None
    fields = _META.unpack_from(buffer, offset + PAGE_HEADER_SIZE)
    magic, version, page_size, _flags, root, _seq, freelist, hwm, txid, checksum = fields
    if magic != MAGIC or version != VERSION:
        return None
    if not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE or page_size & (page_size - 1):
        return None
    if _fnv1a64(buffer[offset + PAGE_HEADER_SIZE : end - 8]) != checksum:
        return None
    return Meta(page_size, root, freelist, hwm, txid)


def select_meta(buffer: mmap.mmap) -> Meta:
    """The valid meta page with the higher txid, as bbolt itself chooses."""
    first = _parse_meta(buffer, 0)
    offsets = (first.page_size,) if first else _FALLBACK_PAGE_SIZES
    second = next((m for o in offsets if (m := _parse_meta(buffer, o)) is not None), None)
    candidates = [meta for meta in (first, second) if meta is not None]
    if not candidates:
        raise BoltError("not a bbolt database: neither meta page is valid")
    return max(candidates, key=lambda meta: meta.txid)


class BoltDB(Closable):
    """A bbolt file opened read-only; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDONLY)  # never O_CREAT: a wrong path is an error, not a new db
        try:
            self.file_size = os.fstat(fd).st_size
            if self.file_size < 2 * PAGE_HEADER_SIZE + _META.size:
                raise BoltError(f"not a bbolt database: {path} is only {self.file_size} bytes")
            self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:  # not a regular file (a directory, a device)
            raise BoltError(f"cannot map {path}: {exc}") from None
        finally:
            os.close(fd)
        self._visited = 0
        try:
            self.meta = select_meta(self._map)
            if self.meta.database_size > self.file_size:
                raise BoltError(
                    f"truncated: bbolt's meta says {self.meta.high_water_pgid} pages of"
                    f" {self.meta.page_size} bytes ({self.meta.database_size} bytes),"
                    f" the file has {self.file_size}"
                )
        except BaseException:
            self._map.close()
            raise

    def close(self) -> None:
        self._map.close()

    @property
    def root(self) -> Bucket:
        return Bucket(self, self._page_offset(self.meta.root_pgid), None)

    def bucket(self, name: bytes) -> Bucket | None:
        return self.root.bucket(name)

    def _page_offset(self, pgid: int) -> int:
        if pgid < 2 or pgid >= self.meta.high_water_pgid:
            raise BoltError(
                f"damaged: a page reference ({pgid}) points outside the database"
                f" (pages 2..{self.meta.high_water_pgid - 1})"
            )
        return pgid * self.meta.page_size

    def _page(self, offset: int, limit: int | None) -> tuple[int, int, int]:
        """(flags, element count, end offset) of the page at `offset`, bounds-checked.
        `limit` is the end of an inline page's value; None for a real page."""
        if offset + PAGE_HEADER_SIZE > (self.meta.database_size if limit is None else limit):
            raise BoltError(f"damaged: the page at byte {offset} runs past its end")
        _pgid, flags, count, overflow = _PAGE_HEADER.unpack_from(self._map, offset)
        if limit is None:
            limit = offset + (overflow + 1) * self.meta.page_size
            if limit > self.meta.database_size:
                raise BoltError(f"damaged: the page at byte {offset} runs past the database end")
        if offset + PAGE_HEADER_SIZE + count * ELEMENT_SIZE > limit:
            raise BoltError(f"damaged: the page at byte {offset} holds more elements than fit")
        self._visited += max(limit - offset, _FAULT_AROUND)
        if self._visited >= _DROP_EVERY:
            self._drop_resident_pages()
        return flags, count, limit

    def _drop_resident_pages(self) -> None:
        # A read-only shared mapping of a file: pages dropped here are refaulted from the page
        # cache if needed again, so this only bounds our resident set, never changes data.
        self._visited = 0
        if hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def _children(self, offset: int, count: int, end: int) -> list[tuple[bytes, int]]:
        """(first key, page offset) of every child of the branch page at `offset`."""
        children = []
        for index in range(count):
            element = offset + PAGE_HEADER_SIZE + index * ELEMENT_SIZE
            pos, ksize, pgid = _BRANCH_ELEMENT.unpack_from(self._map, element)
            if element + pos + ksize > end:
                raise BoltError(f"damaged: a key of the branch page at byte {offset} overflows it")
            key = self._map[element + pos : element + pos + ksize]
            children.append((key, self._page_offset(pgid)))
        return children

    def _leaf_pages(self, offset: int, limit: int | None) -> Iterator[tuple[int, int, int]]:
        """(offset, element count, end) of every leaf page under the page at `offset`, in key
        order. An explicit stack: depth-first, no recursion through generators."""
        stack: list[tuple[int, int | None, int]] = [(offset, limit, 0)]
        entered: set[int] = set()  # branch pages: few, and a cycle must pass through one
        budget = self.meta.database_size  # a tree visits each of its pages once
        while stack:
            current, current_limit, depth = stack.pop()
            flags, count, end = self._page(current, current_limit)
            budget -= end - current
            if budget < 0:
                raise BoltError(
                    f"damaged: the tree under byte {offset} visits more pages than the"
                    " database holds (pages shared by several parents)"
                )
            if flags & LEAF_PAGE:
                yield current, count, end
            elif flags & BRANCH_PAGE:
                self._enter(current, depth, entered)
                children = self._children(current, count, end)
                stack.extend((child, None, depth + 1) for _key, child in reversed(children))
            else:
                raise BoltError(f"damaged: page at byte {current} is neither branch nor leaf")

    @staticmethod
    def _enter(branch: int, depth: int, entered: set[int]) -> None:
        """Refuse a branch page already entered in this walk (a cycle) or one too deep."""
        if branch in entered:
            raise BoltError(f"damaged: the branch page at byte {branch} is its own descendant")
        if depth >= MAX_DEPTH:
            raise BoltError(f"damaged: the tree is deeper than {MAX_DEPTH} levels")
        entered.add(branch)

    def _leaf_elements(
        self, page: int, count: int, end: int
    ) -> Iterator[tuple[int, bytes, int, int]]:
        buffer = self._map
        unpack = _LEAF_ELEMENT.unpack_from
        for index in range(count):
            element = page + PAGE_HEADER_SIZE + index * ELEMENT_SIZE
            flags, pos, ksize, vsize = unpack(buffer, element)
            key_start = element + pos
            value_end = key_start + ksize + vsize
            if value_end > end:
                raise BoltError(f"damaged: an element of the page at byte {page} overflows it")
            yield flags, buffer[key_start : key_start + ksize], key_start + ksize, value_end

    def _elements(self, offset: int, limit: int | None) -> Iterator[tuple[int, bytes, int, int]]:
        """(flags, key, value start, value end) of every leaf element under `offset`."""
        for page, count, end in self._leaf_pages(offset, limit):
            yield from self._leaf_elements(page, count, end)

    def _seek_leaf(self, offset: int, limit: int | None, key: bytes) -> tuple[int, int, int]:
        """The leaf page that would hold `key`: descend through branch pages by first keys."""
        entered: set[int] = set()
        for depth in range(MAX_DEPTH + 1):
            flags, count, end = self._page(offset, limit)
            if flags & LEAF_PAGE:
                return offset, count, end
            if not flags & BRANCH_PAGE or count == 0:
                raise BoltError(f"damaged: page at byte {offset} is neither branch nor leaf")
            self._enter(offset, depth, entered)
            children = self._children(offset, count, end)
            offset, limit = children[0][1], None
            for first_key, child in children[1:]:
                if first_key > key:
                    break
                offset = child
        raise AssertionError("unreachable: _enter refuses a tree deeper than MAX_DEPTH")

    def _value(self, start: int, end: int) -> bytes:
        return self._map[start:end]

    def _bucket_at(self, start: int, end: int) -> Bucket:
        if end - start < BUCKET_HEADER_SIZE:
            raise BoltError(f"damaged: a bucket value at byte {start} is too short")
        root, _sequence = _BUCKET_HEADER.unpack_from(self._map, start)
        if root == 0:  # inline: the bucket's single leaf page follows its header in the value
            return Bucket(self, start + BUCKET_HEADER_SIZE, end)
        return Bucket(self, self._page_offset(root), None)


class Bucket:
    """A bucket whose root page is at `offset` in the file; `limit` ends an inline bucket."""

    def __init__(self, db: BoltDB, offset: int, limit: int | None) -> None:
        self._db = db
        self._offset = offset
        self._limit = limit

    def _elements(self) -> Iterator[tuple[int, bytes, int, int]]:
        return self._db._elements(self._offset, self._limit)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of every plain entry in key order; nested buckets are skipped."""
        for flags, key, start, end in self._elements():
            if not flags & BUCKET_LEAF_FLAG:
                yield key, self._db._value(start, end)

    def iter_keys(self) -> Iterator[bytes]:
        """Every key, nested buckets' names included, without reading values."""
        for _flags, key, _start, _end in self._elements():
            yield key

    def buckets(self) -> Iterator[tuple[bytes, Bucket]]:
        """(name, bucket) of every nested bucket, in key order."""
        for flags, key, start, end in self._elements():
            if flags & BUCKET_LEAF_FLAG:
                yield key, self._db._bucket_at(start, end)

    def _find(self, key: bytes) -> tuple[int, int, int] | None:
        """(flags, value start, value end) of `key`, found by descending the tree."""
        page, count, end = self._db._seek_leaf(self._offset, self._limit, key)
        for flags, found, start, stop in self._db._leaf_elements(page, count, end):
            if found == key:
                return flags, start, stop
            if found > key:
                break
        return None

    def bucket(self, name: bytes) -> Bucket | None:
        found = self._find(name)
        if found is None or not found[0] & BUCKET_LEAF_FLAG:
            return None
        return self._db._bucket_at(found[1], found[2])

    def get(self, key: bytes) -> bytes | None:
        """The value of the plain entry `key`, or None."""
        found = self._find(key)
        if found is None or found[0] & BUCKET_LEAF_FLAG:
            return None
        return self._db._value(found[1], found[2])

    def count(self) -> int:
        """Entries of this bucket, a nested bucket's name counting as one (as etcd 3.4's
        `snapshot status` counts `totalKey`)."""
        return sum(1 for _ in self._elements())
