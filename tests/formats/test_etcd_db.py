"""etcd's MVCC store read from a real etcd's snapshot, checked against what etcd reports."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from k3s_backup.formats.etcd_db import EtcdDb, decode_key_value, key_of
from k3s_backup.formats.protowire import encode_bytes, encode_varint
from k3s_backup.lab.etcd import EtcdServer
from tests.support.k8s_data import ENCRYPTED_SECRET, live_revision_and_keys, load_cluster


@dataclass(frozen=True)
class Taken:
    path: Path
    revision: int
    keys: set[str]
    compacted: int


@pytest.fixture(scope="module")
def taken(tmp_path_factory) -> Taken:
    if shutil.which("etcd") is None:
        pytest.skip("needs Debian's etcd-server and etcd-client")
    root = tmp_path_factory.mktemp("etcd-db")
    with EtcdServer(root / "etcd") as etcd:
        compacted = load_cluster(etcd)
        etcd.put("/registry/configmaps/kube-system/coredns", b"after compaction")
        path = etcd.snapshot_save(root / "snap.db")
        revision, keys = live_revision_and_keys(etcd)
    return Taken(path, revision, keys, compacted)


def test_live_keys_and_revision_equal_what_etcd_reported(taken):
    with EtcdDb(taken.path) as db:
        state = db.live()
        assert db.revision(state.last_revision) == taken.revision
        assert db.compact_revision() == taken.compacted
    assert {key.decode() for key in state.keys} == taken.keys
    assert state.tombstones >= 2


def test_get_returns_the_newest_value_and_none_for_deleted_keys(taken):
    with EtcdDb(taken.path) as db:
        coredns = db.get(b"/registry/configmaps/kube-system/coredns")
        assert db.get(b"/registry/pods/default/web-3") is None
        deleted = db.latest(b"/registry/pods/default/web-3")
        secret = db.get(b"/registry/secrets/default/db")
    assert coredns is not None and coredns.value == b"after compaction"
    assert coredns.version == 4 and coredns.mod_revision == taken.revision
    assert deleted is not None and deleted[0].tombstone
    assert secret is not None and secret.value == ENCRYPTED_SECRET


def test_compaction_drops_history_before_its_revision(taken):
    with EtcdDb(taken.path) as db:
        history = [(rev, kv) for rev, kv in db.history()]
    assert all(rev.main >= taken.compacted or not rev.tombstone for rev, _kv in history)
    coredns = [rev.main for rev, kv in history if kv.key.endswith(b"/coredns")]
    assert min(coredns) <= taken.compacted  # the newest revision before compaction is kept
    assert len(coredns) == 2  # ... but the older ones are gone


def test_prefix_restricts_the_live_keys(taken):
    with EtcdDb(taken.path) as db:
        pods = db.live(b"/registry/pods/")
    assert sorted(pods.keys) == [b"/registry/pods/default/web-1", b"/registry/pods/default/web-2"]


def test_census_agrees_with_the_full_pass(taken):
    """The key-only pass `run` uses for a snapshot's identity sees what `live` sees."""
    with EtcdDb(taken.path) as db:
        live = db.live(b"/registry/")
        alive, value = db.census(b"/registry/", b"/registry/configmaps/kube-system/coredns")
        assert alive == set(live.keys)
        newest = live.keys[b"/registry/configmaps/kube-system/coredns"]
        assert value is not None
        assert decode_key_value(value) == db.value_at(newest.revision_key)
        gone = db.census(b"/registry/", b"/registry/pods/default/web-3")[1]
        assert gone is None  # deleted after the compaction


def test_key_of_reads_a_key_written_in_any_field_order():
    assert key_of(encode_bytes(1, b"/a") + encode_bytes(5, b"v")) == b"/a"
    assert key_of(encode_varint(2 << 3) + encode_varint(7) + encode_bytes(1, b"/b")) == b"/b"
