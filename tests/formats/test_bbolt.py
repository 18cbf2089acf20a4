"""The read-only bbolt reader against snapshots a real etcd wrote."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from k3s_backup.formats.bbolt import BRANCH_PAGE, PAGE_HEADER_SIZE, BoltDB, BoltError
from k3s_backup.testbed.etcd import EtcdServer, snapshot_status

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
