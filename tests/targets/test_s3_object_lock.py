"""S3 Object Lock on a real S3-speaking server (moto): what a locking target stores is locked,
what it reads is the first version of a name, and what it deletes is every version, never one
still locked. The node's own credentials try what an intruder would.

moto does not model IAM: every request is allowed by policy, and moto does not enforce a lock
against PutObjectRetention (shortening a lock, in either mode, succeeds there; AWS refuses it).
Those tests say so (strict xfail: they fail loudly once moto enforces it)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from k3s_backup.config import S3TargetConfig
from k3s_backup.lab.s3 import ACCESS_KEY, SECRET_KEY, S3Server
from k3s_backup.policy import naming
from k3s_backup.targets.base import TEMP_MARK, CopyLocked, Target, put_bytes
from k3s_backup.targets.factory import open_target, s3_backend

CLUSTER = "k3s-lab"
PREFIX = "clusters/lab/"


def client_of(server: S3Server) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def bucket_name(tmp_path: Path, tag: str) -> str:
    return f"{tag}-{tmp_path.name.lower().replace('_', '-')}"[:60].rstrip("-")


def target_config(server: S3Server, bucket: str, tmp_path: Path, **extra: Any) -> S3TargetConfig:
    return S3TargetConfig(
        name="objects",
        type="s3",
        bucket=bucket,
        prefix=PREFIX,
        endpoint_url=server.endpoint_url,
        credentials_file=server.write_credentials(tmp_path / "credentials"),
        **extra,
    )


def name_made(ago: timedelta = timedelta(0)) -> str:
    when = datetime.now().astimezone() - ago
    return f"{naming.snapshot_prefix(CLUSTER, when)}-k3s-05-{int(when.timestamp())}"


class Bucket:
    """The bucket as boto3 alone sees it: every version, no project code."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def versions(self, name: str) -> list[dict[str, Any]]:
        listed = self.client.list_object_versions(Bucket=self.bucket, Prefix=PREFIX + name)
        return [v for v in listed.get("Versions", []) if v["Key"] == PREFIX + name]

    def markers(self, name: str) -> list[dict[str, Any]]:
        listed = self.client.list_object_versions(Bucket=self.bucket, Prefix=PREFIX + name)
        return [v for v in listed.get("DeleteMarkers", []) if v["Key"] == PREFIX + name]

    def head(self, name: str, version: str) -> dict[str, Any]:
        return dict(
            self.client.head_object(Bucket=self.bucket, Key=PREFIX + name, VersionId=version)
        )

    def read(self, name: str, version: str) -> bytes:
        got = self.client.get_object(Bucket=self.bucket, Key=PREFIX + name, VersionId=version)
        return bytes(got["Body"].read())

    def every_version(self) -> dict[tuple[str, str], bytes]:
        listed = self.client.list_object_versions(Bucket=self.bucket, Prefix=PREFIX)
        return {
            (v["Key"], v["VersionId"]): self.read(v["Key"][len(PREFIX) :], v["VersionId"])
            for v in listed.get("Versions", [])
        }

    def expire(self, name: str) -> None:
        """Time passing, as an operator may simulate it on moto: each version's GOVERNANCE
        lock set to a past date (AWS would refuse a past date; moto accepts it)."""
        for version in self.versions(name):
            self.client.put_object_retention(
                Bucket=self.bucket,
                Key=PREFIX + name,
                VersionId=version["VersionId"],
                Retention={
                    "Mode": "GOVERNANCE",
                    "RetainUntilDate": datetime(2020, 1, 1, tzinfo=UTC),
                },
                BypassGovernanceRetention=True,
            )


@pytest.fixture(params=["governance", "compliance"])
def locked(request, s3_server, tmp_path) -> Iterator[tuple[Target, Bucket, str]]:
    client = client_of(s3_server)
    bucket = bucket_name(tmp_path, "lock")
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    config = target_config(s3_server, bucket, tmp_path, object_lock=request.param)
    with open_target(config, CLUSTER) as target:
        yield target, Bucket(client, bucket), request.param.upper()


def stored(target: Target, name: str, body: bytes) -> None:
    put_bytes(target, name, body)
    put_bytes(target, naming.manifest_name(name), b'{"manifest": 1}')


def read(target: Target, name: str) -> bytes:
    out = io.BytesIO()
    target.get(name, out, 1 << 20)
    return out.getvalue()


def test_every_object_a_put_stores_is_locked_until_its_scheduled_rotation(locked):
    target, bucket, mode = locked
    name = name_made()
    stored(target, name, b"etcd snapshot bytes")
    made = datetime.now(UTC)
    for each in (name, naming.manifest_name(name)):
        [version] = bucket.versions(each)
        head = bucket.head(each, version["VersionId"])
        assert head["ObjectLockMode"] == mode
        # keep = 7 with the default schedule (02:00 daily): the 7th 02:00 from now
        assert timedelta(days=6) < head["ObjectLockRetainUntilDate"] - made <= timedelta(days=7)
    assert sorted(o.name for o in target.list()) == [name, naming.manifest_name(name)]
    # the temporary upload leaves no version behind (deleted by version, not hidden)
    listed = bucket.client.list_object_versions(Bucket=bucket.bucket, Prefix=PREFIX)
    assert all(TEMP_MARK not in v["Key"] for v in listed.get("Versions", []))
    assert not listed.get("DeleteMarkers")


def test_a_large_copy_multipart_on_both_legs_is_locked_too(locked):
    target, bucket, mode = locked
    name = name_made()
    body = bytes(range(256)) * (40 << 10)  # 10 MiB: multipart upload and multipart copy
    put_bytes(target, name, body)
    [version] = bucket.versions(name)
    assert bucket.head(name, version["VersionId"])["ObjectLockMode"] == mode
    assert read_all(target, name, len(body)) == body


def read_all(target: Target, name: str, size: int) -> bytes:
    out = io.BytesIO()
    target.get(name, out, size)
    return out.getvalue()


def test_the_attacker_cannot_delete_a_locked_copy_by_version(locked):
    target, bucket, _ = locked
    name = name_made()
    stored(target, name, b"the good copy")
    before = bucket.every_version()
    [version] = bucket.versions(name)
    with pytest.raises(ClientError, match="AccessDenied"):
        bucket.client.delete_object(
            Bucket=bucket.bucket, Key=PREFIX + name, VersionId=version["VersionId"]
        )
    refused = bucket.client.delete_objects(
        Bucket=bucket.bucket,
        Delete={"Objects": [{"Key": PREFIX + name, "VersionId": version["VersionId"]}]},
    )
    assert refused.get("Errors") and not refused.get("Deleted")
    assert bucket.every_version() == before
    assert read(target, name) == b"the good copy"


def test_a_delete_marker_does_not_hide_the_copy(locked):
    target, bucket, _ = locked
    name = name_made()
    stored(target, name, b"the good copy")
    bucket.client.delete_object(Bucket=bucket.bucket, Key=PREFIX + name)  # no version: a marker
    assert bucket.markers(name)
    assert name in {o.name for o in target.list()}
    assert target.stat(name) is not None
    assert read(target, name) == b"the good copy"


def test_an_overwrite_is_a_newer_version_the_target_never_reads(locked):
    target, bucket, _ = locked
    name = name_made()
    good = b"the good copy"
    stored(target, name, good)
    bucket.client.put_object(Bucket=bucket.bucket, Key=PREFIX + name, Body=b"ransom note" * 9)
    assert len(bucket.versions(name)) == 2
    [listed] = [o for o in target.list() if o.name == name]
    assert listed.size == len(good)
    assert read(target, name) == good
    assert target.sha256(name) == hashlib.sha256(good).hexdigest()
    [oldest] = bucket.versions(name)[-1:]
    assert bucket.read(name, oldest["VersionId"]) == good


def test_shipping_the_same_bytes_again_adds_no_version_and_other_bytes_are_refused(locked):
    target, bucket, _ = locked
    name = name_made()
    put_bytes(target, name, b"the good copy")
    put_bytes(target, name, b"the good copy")  # a run shipping again after being cut short
    assert len(bucket.versions(name)) == 1
    with pytest.raises(Exception, match="already holds other bytes under"):
        put_bytes(target, name, b"other bytes")
    assert read(target, name) == b"the good copy"
    assert len(bucket.versions(name)) == 1


def test_delete_refuses_before_trying_while_locked_and_removes_every_version_once_expired(
    locked,
):
    target, bucket, mode = locked
    name = name_made()
    stored(target, name, b"the good copy")
    bucket.client.put_object(Bucket=bucket.bucket, Key=PREFIX + name, Body=b"overwrite")
    bucket.client.delete_object(Bucket=bucket.bucket, Key=PREFIX + name)
    with pytest.raises(CopyLocked, match="locked until") as refused:
        target.delete(name)
    assert refused.value.until is not None and refused.value.until > datetime.now(UTC)
    assert len(bucket.versions(name)) == 2 and bucket.markers(name)
    if mode == "COMPLIANCE":
        return  # no identity can shorten a COMPLIANCE lock (on AWS); nothing to expire here
    bucket.expire(name)
    target.delete(name)
    assert bucket.versions(name) == [] and bucket.markers(name) == []
    assert name not in {o.name for o in target.list()}


@pytest.mark.xfail(
    strict=True, reason="moto 5 does not enforce Object Lock on PutObjectRetention (AWS does)"
)
def test_the_attacker_cannot_shorten_a_lock(locked):
    target, bucket, mode = locked
    name = name_made()
    stored(target, name, b"the good copy")
    [version] = bucket.versions(name)
    with pytest.raises(ClientError, match="AccessDenied"):
        bucket.client.put_object_retention(
            Bucket=bucket.bucket,
            Key=PREFIX + name,
            VersionId=version["VersionId"],
            Retention={"Mode": mode, "RetainUntilDate": datetime.now(UTC) + timedelta(seconds=1)},
        )


def test_the_node_can_bypass_governance_only_where_iam_does_not_forbid_it(locked):
    """moto models no IAM: the node's credentials *can* bypass a GOVERNANCE lock there. On AWS
    the node's policy (docs) lacks s3:BypassGovernanceRetention; COMPLIANCE needs no policy."""
    target, bucket, mode = locked
    name = name_made()
    stored(target, name, b"the good copy")
    [version] = bucket.versions(name)
    bypass = {"BypassGovernanceRetention": True}
    if mode == "COMPLIANCE":
        with pytest.raises(ClientError, match="AccessDenied"):
            bucket.client.delete_object(
                Bucket=bucket.bucket, Key=PREFIX + name, VersionId=version["VersionId"], **bypass
            )
        assert read(target, name) == b"the good copy"
    else:
        bucket.client.delete_object(
            Bucket=bucket.bucket, Key=PREFIX + name, VersionId=version["VersionId"], **bypass
        )
        assert bucket.versions(name) == []  # what IAM alone prevents on AWS


def test_a_target_without_object_lock_keeps_todays_behaviour(s3_server, tmp_path):
    client = client_of(s3_server)
    bucket = bucket_name(tmp_path, "plain")
    client.create_bucket(Bucket=bucket)
    config = target_config(s3_server, bucket, tmp_path)
    name = name_made()
    with open_target(config, CLUSTER) as target:
        put_bytes(target, name, b"copy")
        head = client.head_object(Bucket=bucket, Key=PREFIX + name)
        assert "ObjectLockMode" not in head
        target.delete(name)
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=PREFIX)
    assert not s3_backend(config, CLUSTER).object_lock_enabled()


def test_object_lock_enabled_reads_the_bucket(s3_server, tmp_path):
    client = client_of(s3_server)
    bucket = bucket_name(tmp_path, "lock")
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    assert s3_backend(target_config(s3_server, bucket, tmp_path), CLUSTER).object_lock_enabled()


def test_a_caught_up_copy_past_its_retention_is_not_locked(locked):
    target, bucket, _ = locked
    name = name_made(ago=timedelta(days=30))  # keep = 7 daily: rotation removes it now
    put_bytes(target, name, b"old copy")
    [version] = bucket.versions(name)
    assert "ObjectLockMode" not in bucket.head(name, version["VersionId"])
    target.delete(name)
    assert bucket.versions(name) == []
