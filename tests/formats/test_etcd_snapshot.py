"""Snapshot checks without etcd binaries, on snapshots taken from a real etcd."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from k3s_backup.errors import SnapshotError
from k3s_backup.formats.etcd_snapshot import TrailerCheck, check_file
from k3s_backup.lab.etcd import EtcdServer


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("etcd")
    with EtcdServer(workdir) as etcd:
        for i in range(200):
            etcd.put(f"/registry/configmaps/default/cm-{i}", f"value-{i}" * 20)
        return etcd.snapshot_save(workdir / "snap.db")


def write(tmp_path: Path, data: bytes, name: str = "snap") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_real_snapshot_passes(snapshot):
    check = check_file(snapshot)
    assert check.size == snapshot.stat().st_size
    assert check.page_size == 4096
    assert len(check.sha256) == 64


@pytest.mark.parametrize("offset", [0, 100, 4096 + 20, -4000, -10])
def test_any_flipped_byte_is_caught(snapshot, tmp_path, offset):
    data = bytearray(snapshot.read_bytes())
    data[offset] ^= 0x01
    with pytest.raises(SnapshotError):
        check_file(write(tmp_path, bytes(data)))


@pytest.mark.parametrize("cut", [1, 32, 512, 4096])
def test_truncation_is_caught(snapshot, tmp_path, cut):
    with pytest.raises(SnapshotError):
        check_file(write(tmp_path, snapshot.read_bytes()[:-cut]))


def test_a_raw_db_without_trailer_is_refused(snapshot, tmp_path):
    with pytest.raises(SnapshotError, match="512"):
        check_file(write(tmp_path, snapshot.read_bytes()[:-32]))


def test_a_rehashed_but_truncated_database_is_caught_by_the_page_count(snapshot, tmp_path):
    import hashlib

    db = snapshot.read_bytes()[:-32][:-4096]
    with pytest.raises(SnapshotError, match="pages"):
        check_file(write(tmp_path, db + hashlib.sha256(db).digest()))


def test_zip_with_one_matching_entry_passes(snapshot, tmp_path):
    path = tmp_path / "c-20261123-020000-n-1.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(snapshot, "c-20261123-020000-n-1")
    assert check_file(path).size == snapshot.stat().st_size


def test_zip_with_a_wrong_entry_or_damage_is_refused(snapshot, tmp_path):
    path = tmp_path / "c-20261123-020000-n-1.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(snapshot, "something-else")
    with pytest.raises(SnapshotError, match="exactly"):
        check_file(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(snapshot, "c-20261123-020000-n-1")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError):
        check_file(path)


def test_garbage_and_empty_files_are_refused(tmp_path):
    for data in (b"", b"hello", bytes(8192 + 32)):
        with pytest.raises(SnapshotError):
            check_file(write(tmp_path, data))


def test_a_zip_whose_offsets_point_before_its_start_is_damaged(snapshot, tmp_path):
    # Found by fuzzing (tests/fuzz/formats/test_etcd_snapshot.py): one byte less at the start
    # moves every offset, and zipfile seeks before the file (OSError, not BadZipFile).
    name = "k3s-lab-20261123-020000-k3s-05-1795399200.zip"
    archive = tmp_path / name
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(snapshot, name.removesuffix(".zip"))
    archive.write_bytes(archive.read_bytes()[1:])
    with pytest.raises(SnapshotError, match="zip snapshot is damaged"):
        check_file(archive)


@pytest.mark.parametrize("chunk", [1, 31, 32, 33, 4096, 1 << 20])
def test_the_check_of_bytes_fed_in_any_chunks_is_the_check_of_the_file(snapshot, chunk):
    """TrailerCheck checks bytes as they pass for another purpose (sent, received): the
    trailer is the last 32 bytes however the chunks fall."""
    data = snapshot.read_bytes()
    check = TrailerCheck()
    for start in range(0, len(data), chunk):
        check.update(data[start : start + chunk])
    assert check.result() == check_file(snapshot)


def test_bytes_fed_that_are_not_a_whole_snapshot_are_refused(snapshot):
    data = bytearray(snapshot.read_bytes())
    for damaged, problem in (
        (bytes(data[:-32]), "512"),
        (bytes(data[:4096]) + bytes(data[4096 * 2 :]), "trailer"),
        (bytes(data[:100]) + bytes([data[100] ^ 1]) + bytes(data[101:]), "trailer"),
    ):
        check = TrailerCheck()
        check.update(damaged)
        with pytest.raises(SnapshotError, match=problem):
            check.result()
