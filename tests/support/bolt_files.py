"""Hand-made bbolt files and etcd snapshots: the damaged and hostile shapes no etcd writes.

A real etcd makes the good files (tests/formats, tests/fuzz); these build the bad ones page by
page, with valid meta pages (checksums included) so a reader gets past its first checks.
"""

from __future__ import annotations

import hashlib
import struct

from k3s_backup.formats.bbolt import BRANCH_PAGE, LEAF_PAGE, MAGIC, VERSION
from k3s_backup.formats.protowire import encode_bytes

PAGE = 4096
META_PAGE = 0x04
FREELIST_PAGE = 0x10
_PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
_META_FIELDS = struct.Struct("<IIIIQQQQQ")  # up to the checksum


def _fnv1a64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def meta_page(pgid: int, root: int, hwm: int, txid: int, page_size: int = PAGE) -> bytes:
    fields = _META_FIELDS.pack(MAGIC, VERSION, page_size, 0, root, 0, 2, hwm, txid)
    body = fields + struct.pack("<Q", _fnv1a64(fields))
    page = _PAGE_HEADER.pack(pgid, META_PAGE, 0, 0) + body
    return page.ljust(page_size, b"\0")


def branch_page(pgid: int, children: list[tuple[bytes, int]], page_size: int = PAGE) -> bytes:
    """A branch page whose elements point at `children` (first key, pgid)."""
    header = _PAGE_HEADER.pack(pgid, BRANCH_PAGE, len(children), 0)
    elements, keys = b"", b""
    keys_start = 16 * len(children)
    for index, (key, child) in enumerate(children):
        pos = keys_start + len(keys) - 16 * index  # from the element to its key
        elements += struct.pack("<IIQ", pos, len(key), child)
        keys += key
    return (header + elements + keys).ljust(page_size, b"\0")


def leaf_page(
    pgid: int, items: list[tuple[int, bytes, bytes]], page_size: int = PAGE, overflow: int = 0
) -> bytes:
    """A leaf page of (flags, key, value) elements."""
    header = _PAGE_HEADER.pack(pgid, LEAF_PAGE, len(items), overflow)
    elements, data = b"", b""
    data_start = 16 * len(items)
    for index, (flags, key, value) in enumerate(items):
        pos = data_start + len(data) - 16 * index
        elements += struct.pack("<IIII", flags, pos, len(key), len(value))
        data += key + value
    return (header + elements + data).ljust(page_size * (overflow + 1), b"\0")


def bucket_value(root_pgid: int) -> bytes:
    """A nested bucket's value: its root page and sequence (root 0 = inline, page follows)."""
    return struct.pack("<QQ", root_pgid, 0)


def database(pages: dict[int, bytes], root: int, page_size: int = PAGE) -> bytes:
    """A bbolt file: two meta pages (root bucket at `root`), then `pages` by pgid."""
    hwm = max(pages) + 1 + (len(pages[max(pages)]) // page_size - 1)
    body = meta_page(0, root, hwm, 1, page_size) + meta_page(1, root, hwm, 0, page_size)
    for pgid in range(2, hwm):
        if pgid in pages:
            body += pages[pgid]
        elif len(body) < (pgid + 1) * page_size:
            body += _PAGE_HEADER.pack(pgid, FREELIST_PAGE, 0, 0).ljust(page_size, b"\0")
    return body


def with_trailer(db: bytes) -> bytes:
    """An etcd snapshot: the database and the SHA-256 of its bytes."""
    return db + hashlib.sha256(db).digest()


def self_referencing_branch() -> bytes:
    """16 KiB: the root bucket's branch page (3) names itself as its only child. Its meta pages
    and SHA-256 trailer are valid, so it passes every check of the file as a whole."""
    return with_trailer(database({3: branch_page(3, [(b"key", 3)])}, root=3))


def cyclic_branches() -> bytes:
    """Two branch pages pointing at each other, under a root leaf holding bucket `key`."""
    root = leaf_page(2, [(0x01, b"key", bucket_value(3))])
    pages = {2: root, 3: branch_page(3, [(b"a", 4)]), 4: branch_page(4, [(b"a", 3)])}
    return with_trailer(database(pages, root=2))


def revision_key(main: int, sub: int = 0) -> bytes:
    return main.to_bytes(8, "big") + b"_" + sub.to_bytes(8, "big")


def key_value(key: bytes, value: bytes, mod_revision: int = 1) -> bytes:
    """An mvccpb.KeyValue: key (1), create (2) and mod (3) revision, version (4), value (5)."""
    varints = b"".join(bytes([number << 3]) + bytes([mod_revision]) for number in (2, 3, 4))
    return encode_bytes(1, key) + varints + encode_bytes(5, value)


def etcd_snapshot(entries: list[tuple[bytes, bytes]]) -> bytes:
    """An etcd snapshot whose `key` bucket holds `entries` (revision key, raw KeyValue)."""
    root = leaf_page(2, [(0x01, b"key", bucket_value(3))])
    items = [(0, key, value) for key, value in entries]
    needed = 16 + sum(16 + len(key) + len(value) for key, value in entries)
    pages = {2: root, 3: leaf_page(3, items, overflow=(needed - 1) // PAGE)}
    return with_trailer(database(pages, root=2))
