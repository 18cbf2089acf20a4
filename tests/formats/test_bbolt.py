"""The read-only bbolt reader against snapshots a real etcd wrote."""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import pytest

from k3s_backup.formats.bbolt import (
    BRANCH_PAGE,
    LEAF_PAGE,
    MAX_DEPTH,
    PAGE_HEADER_SIZE,
    BoltDB,
    BoltError,
)
from k3s_backup.lab.etcd import EtcdServer, snapshot_status
from tests.support import bolt_files

ETCD_BUCKETS = {b"key", b"meta", b"lease", b"members", b"cluster", b"alarm", b"auth"}
BIG = bytes(range(256)) * 400  # 100 KiB: spans overflow pages


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    if shutil.which("etcd") is None:
        pytest.skip("needs Debian's etcd-server and etcd-client")
    root = tmp_path_factory.mktemp("bbolt")
    with EtcdServer(root / "etcd") as etcd:
        for index in range(24):  # 1 KiB each: several leaf pages under a branch page
            etcd.put(f"/k/{index:04}", f"value-{index}-".encode() * 100)
        etcd.put("/big", BIG)
        return etcd.snapshot_save(root / "snap.db")


def test_reads_every_bucket_and_counts_like_etcdctl(snapshot):
    with BoltDB(snapshot) as db:
        buckets = dict(db.root.buckets())
        total = sum(bucket.count() for bucket in buckets.values())
    assert set(buckets) >= ETCD_BUCKETS
    # etcd 3.4's `snapshot status` counts every entry of every bucket.
    assert total == snapshot_status(snapshot)["totalKey"]


def test_values_spanning_overflow_pages_read_back_exactly(snapshot):
    with BoltDB(snapshot) as db:
        key_bucket = db.bucket(b"key")
        assert key_bucket is not None
        values = [value for _key, value in key_bucket.items()]
    assert any(BIG in value for value in values)
    assert len(values) == 25  # 24 /k/ puts and /big


def test_keys_come_in_order_and_get_finds_each(snapshot):
    with BoltDB(snapshot) as db:
        key_bucket = db.bucket(b"key")
        assert key_bucket is not None
        items = list(key_bucket.items())
        root_flags = db._page(key_bucket._offset, None)[0]
        assert root_flags & BRANCH_PAGE  # the walk went through a branch page
        assert [k for k, _v in items] == sorted(k for k, _v in items)
        for key, value in items:
            assert key_bucket.get(key) == value
        assert key_bucket.get(b"\xff" * 17) is None
        assert db.bucket(b"no-such-bucket") is None


def test_reading_never_changes_the_file(snapshot):
    before = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    mtime = snapshot.stat().st_mtime_ns
    with BoltDB(snapshot) as db:
        list(db.root.buckets())
    assert hashlib.sha256(snapshot.read_bytes()).hexdigest() == before
    assert snapshot.stat().st_mtime_ns == mtime


def test_a_wrong_path_is_an_error_and_creates_nothing(tmp_path):
    missing = tmp_path / "nope.db"
    with pytest.raises(FileNotFoundError):
        BoltDB(missing)
    assert not missing.exists()


def test_falls_back_to_the_other_meta_page_when_one_is_damaged(snapshot, tmp_path):
    damaged = tmp_path / "damaged.db"
    data = bytearray(snapshot.read_bytes())
    data[PAGE_HEADER_SIZE + 40] ^= 0xFF  # inside meta page 0, so its checksum fails
    damaged.write_bytes(bytes(data))
    with BoltDB(snapshot) as good, BoltDB(damaged) as db:
        assert db.meta.page_size == good.meta.page_size == 4096
        assert sorted(dict(db.root.buckets())) == sorted(dict(good.root.buckets()))


def test_no_valid_meta_page_is_refused(snapshot, tmp_path):
    damaged = tmp_path / "damaged.db"
    data = bytearray(snapshot.read_bytes())
    for page in (0, 1):
        data[page * 4096 + PAGE_HEADER_SIZE] ^= 0xFF  # the magic of both meta pages
    damaged.write_bytes(bytes(data))
    with pytest.raises(BoltError, match="neither meta page is valid"):
        BoltDB(damaged)


def test_a_truncated_file_is_refused_with_its_sizes(snapshot, tmp_path):
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(snapshot.read_bytes()[: 4096 * 6])
    with pytest.raises(BoltError, match=r"truncated: .* the file has 24576"):
        BoltDB(truncated)


def _planted(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "planted.db"
    path.write_bytes(data)
    return path


def test_a_branch_page_pointing_at_itself_is_damage_not_a_hang(tmp_path):
    with BoltDB(_planted(tmp_path, bolt_files.self_referencing_branch())) as db:
        with pytest.raises(BoltError, match="branch page at byte 12288 is its own descendant"):
            db.bucket(b"key")
        with pytest.raises(BoltError, match="its own descendant"):
            list(db.root.buckets())


def test_two_branch_pages_pointing_at_each_other_are_damage(tmp_path):
    with BoltDB(_planted(tmp_path, bolt_files.cyclic_branches())) as db:
        key_bucket = db.bucket(b"key")
        assert key_bucket is not None
        with pytest.raises(BoltError, match="its own descendant"):
            key_bucket.count()
        with pytest.raises(BoltError, match="its own descendant"):
            key_bucket.get(b"a")


def test_a_leaf_shared_by_many_parents_is_refused_by_the_page_budget(tmp_path):
    # One branch page naming the same leaf 200 times: no cycle, but a walk would visit 200
    # pages of a 4-page database.
    leaf = bolt_files.leaf_page(3, [(0, b"k", b"v")])
    branch = bolt_files.branch_page(4, [(b"k", 3)] * 200)
    planted = _planted(tmp_path, bolt_files.database({3: leaf, 4: branch}, root=4))
    with BoltDB(planted) as db, pytest.raises(BoltError, match="visits more pages than"):
        list(db.root.iter_keys())


def test_a_tree_deeper_than_the_limit_is_refused(tmp_path):
    depth = MAX_DEPTH + 2
    pages = {
        2 + level: bolt_files.branch_page(2 + level, [(b"k", 3 + level)]) for level in range(depth)
    }
    pages[2 + depth] = bolt_files.leaf_page(2 + depth, [(0, b"k", b"v")])
    with BoltDB(_planted(tmp_path, bolt_files.database(pages, root=2))) as db:
        with pytest.raises(BoltError, match=f"deeper than {MAX_DEPTH} levels"):
            list(db.root.iter_keys())
        with pytest.raises(BoltError, match=f"deeper than {MAX_DEPTH} levels"):
            db.root.get(b"k")


def _header_only(flags: int, count: int) -> bytes:
    return struct.pack("<QHHI", 3, flags, count, 0).ljust(4096, b"\0")


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (bolt_files.branch_page(3, [(b"k" * 5000, 3)]), "a key of the branch page .* overflows"),
        (bolt_files.branch_page(3, [(b"k", 99)]), "points outside the database"),
        (bolt_files.leaf_page(3, [(0, b"k", b"v" * 5000)]), "an element of the page .* overflows"),
        (_header_only(LEAF_PAGE, 300), "more elements than fit"),
        (_header_only(0x10, 0), "neither branch nor leaf"),
        (bolt_files.leaf_page(3, [(1, b"b", b"short")]), "bucket value .* is too short"),
        (bolt_files.leaf_page(3, [(1, b"b", bolt_files.bucket_value(0))]), "runs past its end"),
    ],
)
def test_a_damaged_page_is_a_bolt_error(tmp_path, page, message):
    data = bolt_files.database({3: page[:4096]}, root=3)
    with BoltDB(_planted(tmp_path, data)) as db, pytest.raises(BoltError, match=message):
        for _name, bucket in db.root.buckets():
            bucket.count()
        list(db.root.items())


def test_a_meta_page_with_an_impossible_page_size_is_invalid(tmp_path):
    data = bolt_files.database({3: bolt_files.leaf_page(3, [])}, root=3)
    bad = bolt_files.meta_page(0, 3, 4, 1, page_size=12345) + bolt_files.meta_page(
        1, 3, 4, 0, page_size=0
    )
    with pytest.raises(BoltError, match="neither meta page is valid"):
        BoltDB(_planted(tmp_path, bad + data[2 * 4096 :]))
