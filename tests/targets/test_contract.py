"""One contract every backend honours (restic-style): run against local, SSH and S3 targets.

Each backend comes with a `Raw` view of its storage that uses no project code (the filesystem,
or boto3 directly), so the tests see what is really stored.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from k3s_backup.catalogue.storage_form import EncodeError, StoredForm, stored_stream
from k3s_backup.config import LocalTargetConfig, S3TargetConfig, SshTargetConfig
from k3s_backup.errors import TargetError
from k3s_backup.lab.s3 import ACCESS_KEY, SECRET_KEY
from k3s_backup.plumbing.streams import RefusedInput
from k3s_backup.targets.base import Target, probes_of
from k3s_backup.targets.factory import open_target
from tests.support.broken_streams import FailingSource

CLUSTER = "k3s-lab"
NAME = "k3s-lab-20261123-020000-k3s-05-1795399200"
FOREIGN = "etcd-snapshot-k3s-05-1795399200"


@dataclass
class DirectoryRaw:
    directory: Path

    def names(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir()) if self.directory.exists() else []

    def write(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / name).write_bytes(data)

    def read(self, name: str) -> bytes:
        return (self.directory / name).read_bytes()

    def private(self, name: str) -> bool:
        mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
        return mode(self.directory / name) == 0o600 and mode(self.directory) == 0o700

    def remove_place(self) -> str:
        """Take the (empty) directory away; what a message about it must name."""
        self.directory.rmdir()
        return f"{self.directory} does not exist"

    def place_exists(self) -> bool:
        return self.directory.exists()


@dataclass
class BucketRaw:
    client: Any
    bucket: str
    prefix: str

    def names(self) -> list[str]:
        found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)
        return sorted(o["Key"][len(self.prefix) :] for o in found.get("Contents", []))

    def write(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data)

    def read(self, name: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()

    def private(self, name: str) -> bool:
        return True  # object ACLs are the bucket's: private by default

    def remove_place(self) -> str:
        self.client.delete_bucket(Bucket=self.bucket)
        return f"bucket {self.bucket} does not exist"

    def place_exists(self) -> bool:
        return any(b["Name"] == self.bucket for b in self.client.list_buckets()["Buckets"])


@pytest.fixture(params=["local", "ssh", "s3", "s3-locked"])
def target_and_raw(request, tmp_path) -> Iterator[tuple[Target, Any]]:
    raw: Any
    if request.param == "local":
        directory = tmp_path / "usb" / "k3s-etcd"
        directory.mkdir(mode=0o700, parents=True)  # as setup (or the operator) makes it
        config: Any = LocalTargetConfig(name="usb", type="local", path=directory)
        raw = DirectoryRaw(directory)
    elif request.param == "ssh":
        lab = request.getfixturevalue("lab")
        config = SshTargetConfig(**lab.ssh_target())
        raw = DirectoryRaw(lab.remote_dir)
    else:
        server = request.getfixturevalue("s3_server")
        bucket = f"k3s-backups-{tmp_path.name.lower().replace('_', '-')}"[:60]
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        locked = request.param == "s3-locked"  # a versioned bucket: names mean oldest versions
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=locked)
        config = S3TargetConfig(
            object_lock="governance" if locked else "off",
            name="objects",
            type="s3",
            bucket=bucket,
            prefix="clusters/lab",
            endpoint_url=server.endpoint_url,
            credentials_file=server.write_credentials(tmp_path / "credentials"),
        )
        raw = BucketRaw(client, bucket, "clusters/lab/")
    with open_target(config, CLUSTER) as target:
        yield target, raw


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_get_roundtrip_is_byte_exact_and_private(target_and_raw):
    target, raw = target_and_raw
    data = bytes(range(256)) * 5000  # several chunks
    target.put(NAME, io.BytesIO(data), sha(data))
    out = io.BytesIO()
    target.get(NAME, out, len(data))
    assert out.getvalue() == data
    assert raw.read(NAME) == data
    assert target.sha256(NAME) == sha(data)
    stored = target.stat(NAME)
    assert stored is not None and stored.size == len(data)
    assert raw.private(NAME)
    assert raw.names() == [NAME]  # no temporary left behind


def test_put_of_a_stream_verifies_against_what_was_sent(target_and_raw):
    """A copy encoded while it is uploaded has no digest beforehand: the target hashes what it
    sends and checks the stored copy against that."""
    target, raw = target_and_raw
    data = bytes(range(256)) * 9000  # over two chunks
    verified = target.put(NAME, io.BytesIO(data), None)
    assert (verified.size, verified.sha256) == (len(data), sha(data))
    assert raw.read(NAME) == data and target.sha256(NAME) == sha(data)
    assert raw.names() == [NAME]


def test_put_of_a_stream_over_several_upload_parts(target_and_raw):
    """S3 uploads a stream in parts of 8 MiB and copies the result server-side in parts too."""
    target, raw = target_and_raw
    data = os.urandom(1 << 20) * 17
    verified = target.put(NAME, io.BytesIO(data), None)
    assert verified.sha256 == sha(data)
    assert raw.read(NAME) == data
    assert target.sha256(NAME) == sha(data)


@pytest.mark.parametrize("sha256", [None, sha(b"x" * 600_000)])
def test_put_whose_source_fails_leaves_nothing_and_says_why(target_and_raw, sha256):
    target, raw = target_and_raw
    raw.write(NAME, b"an older copy under the same name")
    source = FailingSource(b"x" * 900_000, good=600_000)
    with (
        pytest.raises(EncodeError, match="Input/output error"),
        stored_stream(source, 900_000, StoredForm("none"), "", NAME) as stream,
    ):
        target.put(NAME, stream, sha256)
    assert raw.names() == [NAME]  # no temporary left, and the copy already there untouched
    assert raw.read(NAME) == b"an older copy under the same name"


def test_put_that_does_not_verify_leaves_nothing(target_and_raw):
    target, raw = target_and_raw
    with pytest.raises(TargetError, match="does not verify"):
        target.put(NAME, io.BytesIO(b"payload"), sha(b"something else"))
    assert target.stat(NAME) is None
    assert raw.names() == []


def test_put_replaces_atomically(target_and_raw, request):
    if "s3-locked" in request.node.name:
        pytest.skip("a locking target keeps a name's first version (test_s3_object_lock.py)")
    target, _ = target_and_raw
    target.put(NAME, io.BytesIO(b"old"), sha(b"old"))
    target.put(NAME, io.BytesIO(b"new"), sha(b"new"))
    assert target.sha256(NAME) == sha(b"new")


def test_list_stat_delete(target_and_raw):
    target, raw = target_and_raw
    assert target.list() == []
    target.put(NAME, io.BytesIO(b"x"), sha(b"x"))
    raw.write(FOREIGN, b"k3s's own")
    assert sorted(o.name for o in target.list()) == sorted([NAME, FOREIGN])
    target.delete(NAME)
    target.delete(NAME)  # deleting what is gone is not an error
    assert target.stat(NAME) is None
    assert raw.read(FOREIGN) == b"k3s's own"


@pytest.mark.parametrize("foreign", [FOREIGN, "../../etc/passwd", "notes.txt", f"{NAME}; rm -rf /"])
def test_foreign_names_are_refused_before_any_operation(target_and_raw, foreign):
    target, raw = target_and_raw
    for operation in (
        lambda: target.put(foreign, io.BytesIO(b"x"), sha(b"x")),
        lambda: target.get(foreign, io.BytesIO(), 1),
        lambda: target.delete(foreign),
        lambda: target.stat(foreign),
        lambda: target.sha256(foreign),
    ):
        with pytest.raises(TargetError, match="not a k3s-backup file name"):
            operation()
    assert raw.names() == []


@pytest.mark.parametrize("limit", [0, 1000, len(bytes(range(256)) * 50) - 1])
def test_get_of_a_copy_longer_than_announced_stops_one_byte_past_it(target_and_raw, limit):
    """What a listing or manifest announced is all a download takes: a copy grown, swapped or
    planted longer is refused, and no more than `limit` bytes reach the destination."""
    target, raw = target_and_raw
    data = bytes(range(256)) * 50
    raw.write(NAME, data)
    out = io.BytesIO()
    with pytest.raises(RefusedInput, match=f"{NAME} holds more than {limit} bytes"):
        target.get(NAME, out, limit)
    assert len(out.getvalue()) <= limit
    assert raw.read(NAME) == data
    whole = io.BytesIO()
    target.get(NAME, whole, len(data))
    assert whole.getvalue() == data


def test_probes_under_the_name_guard_check_the_place_and_leave_nothing(target_and_raw):
    """setup and doctor ask the backend beneath the guard: it is there, takes a write (the
    probe removed again), and says how much room it has when it can."""
    target, raw = target_and_raw
    probes = probes_of(target)
    probes.connect()
    probes.ensure_directory()  # already there: changes nothing
    assert probes.directory_exists()
    probes.check_writable()
    assert raw.names() == []
    free = probes.free_space()
    assert free is None or free > 0


def test_a_missing_place_is_named_and_never_created(target_and_raw):
    """A wrong path (or bucket) fails every command but setup: listing and storing name it and
    what to do, and nothing is created there (only setup's `ensure_directory` creates)."""
    target, raw = target_and_raw
    said = raw.remove_place()
    with pytest.raises(TargetError, match="does not exist") as listed:
        target.list()
    with pytest.raises(TargetError, match="does not exist") as stored:
        target.put(NAME, io.BytesIO(b"x" * 1000), sha(b"x" * 1000))
    for error in (listed, stored):
        assert said in str(error.value) and "check `" in str(error.value)
    assert not raw.place_exists()
