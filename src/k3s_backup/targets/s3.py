"""S3-compatible object storage (AWS, MinIO, Ceph RGW, Garage, Backblaze B2) with boto3.

Uploads stream (multipart for large copies, each part checksummed by the server) to a temporary
key; the object's size and our SHA-256 of what was sent are checked, and only then is it copied
server-side to its final key, with that SHA-256 in its metadata. Nothing unverified is ever
visible under a final name. S3 cannot hash an object for us, so `sha256` reads the object back.

With Object Lock (`ObjectLock`; the bucket is then versioned), each final object is locked with
a retention date and a name means its oldest version: s3_lock.py.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from k3s_backup.errors import TargetError, TargetUnreachable
from k3s_backup.plumbing.streams import Readable, Writable, copy_capped, sha256_stream
from k3s_backup.targets.base import (
    CopyLocked,
    Digest,
    Outgoing,
    StoredObject,
    Target,
    Verified,
    given_digest,
    temp_name,
)
from k3s_backup.targets.s3_lock import ObjectLock, Versions

# boto3 buffers each part of a stream (our copies are streams: encoded while they are read) in
# memory, up to max_in_memory_upload_chunks parts besides those in flight: with 64 MiB parts
# and its default of 10, a 400 MiB upload peaked at 461 MiB RSS; with the AWS CLI's 8 MiB parts
# and 2 buffered, at 83 MiB (bench/bench_s3_upload.py). 10,000 parts of 8 MiB: 78 GiB, ten
# times etcd's largest database.
PART_SIZE = 8 << 20
BUFFERED_PARTS = 2
CONCURRENCY = 4
SHA_METADATA = "sha256"


def transfer_config() -> TransferConfig:
    config = TransferConfig(
        multipart_threshold=PART_SIZE,
        multipart_chunksize=PART_SIZE,
        max_concurrency=CONCURRENCY,
        preferred_transfer_client="classic",  # the one whose buffering is bounded below
    )
    config.max_in_memory_upload_chunks = BUFFERED_PARTS  # s3transfer's, not in boto3's init
    return config


class S3Target(Target):
    kind = "s3"

    def __init__(
        self,
        name: str,
        bucket: str,
        prefix: str,
        endpoint_url: str | None,
        region: str,
        credentials_file: Path | None = None,
        profile: str | None = None,
        addressing_style: str = "auto",
        lock: ObjectLock | None = None,
    ) -> None:
        self.name = name
        self.lock = lock
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        session = boto3.session.Session(profile_name=profile)
        if credentials_file is not None:
            session._session.set_config_variable("credentials_file", str(credentials_file))
        self.client: Any = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=BotoConfig(
                retries={"max_attempts": 5, "mode": "standard"},
                s3={"addressing_style": addressing_style},
                connect_timeout=15,
                read_timeout=120,
            ),
        )
        self.endpoint = endpoint_url or "AWS"
        self.versions = Versions(name, self.client, bucket, self.location)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} ({self.endpoint})"

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _fail(self, action: str, name: str, exc: Exception) -> TargetError:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            if error.get("Code") == "NoSuchBucket":
                return self._no_bucket()
            reason = f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
        else:
            reason = str(exc) or type(exc).__name__
        # botocore already retried the request; what is left of a link failure is reported as
        # such, so the run can try the target again later
        link_failed = isinstance(exc, (HTTPClientError, BotoConnectionError))
        error = TargetUnreachable if link_failed else TargetError
        return error(f"{self.name}: cannot {action} {name} in {self.location}: {reason}")

    # -- probes, for setup and doctor ------------------------------------------------------

    def connect(self) -> None:
        """Nothing to open: every request makes its own connection."""

    def directory_exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise self._fail("reach", "the bucket", exc) from None
        except BotoCoreError as exc:
            raise self._fail("reach", "the bucket", exc) from None
        return True

    def ensure_directory(self) -> None:
        """Buckets are the provider's to make (with their policy, region, versioning)."""
        if not self.directory_exists():
            raise self._no_bucket()

    def check_writable(self) -> None:
        probe = self._key(temp_name("k3s-backup-write-probe"))
        try:
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"k3s-backup probe\n")
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("write a probe", "object", exc) from None
        finally:
            self._discard(probe)

    def free_space(self) -> int | None:
        return None  # a bucket has no size of its own to tell

    def _no_bucket(self) -> TargetError:
        return TargetError(
            f"{self.name}: bucket {self.bucket} does not exist at {self.endpoint}; check"
            " `bucket` in the config, or create it with the provider's tools"
        )

    # -- the interface ----------------------------------------------------------------------

    def list(self) -> list[StoredObject]:
        found = []
        try:
            if self.lock is not None:  # see s3_lock.py: what a name means on a locking target
                return self.versions.listed(self.prefix)
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) :]
                    if name and "/" not in name:
                        found.append(StoredObject(name, int(item["Size"])))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("list", "objects", exc) from None
        return found

    def _object(self, name: str) -> dict[str, str]:
        """The Key (and, on a locking target, the VersionId) that `name` reads."""
        key = self._key(name)
        if self.lock is None:
            return {"Key": key}
        version = self.versions.oldest(key)
        if version is None:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "no version"}}, "Get")
        return {"Key": key, "VersionId": version}

    def put(self, name: str, source: Readable, sha256: Digest = None) -> Verified:
        temp = self._key(temp_name(name))
        sent = Outgoing(source, None)  # S3 cannot hash an object for us: hash what is sent
        try:
            held = self.versions.oldest(self._key(name)) if self.lock is not None else None
            self.client.upload_fileobj(
                sent,
                self.bucket,
                temp,
                ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                Config=transfer_config(),
            )
            verified = self._check_uploaded(name, temp, sent, sha256)
            if held is not None:
                return self.versions.already_held(self._key(name), name, held, verified)
            # The digest goes into the final object's metadata: for a stream encoded while it
            # is read, it is only known now.
            self.client.copy(
                {"Bucket": self.bucket, "Key": temp},
                self.bucket,
                self._key(name),
                ExtraArgs={
                    "MetadataDirective": "REPLACE",
                    "Metadata": {SHA_METADATA: verified.sha256},
                },
            )
            if self.lock is not None:
                self.versions.lock_new(self.lock, self._key(name), name)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("upload", name, exc) from None
        finally:
            self._discard(temp)
        return verified

    def _check_uploaded(self, name: str, temp: str, sent: Outgoing, sha256: Digest) -> Verified:
        """Each part was checksummed by the server as it arrived; the whole must be what we
        sent (its size) and what the caller expected (our digest of what was sent)."""
        verified = sent.verified()
        expected = given_digest(sha256)
        if expected is not None and verified.sha256 != expected:
            raise TargetError(
                f"{self.name}: copy of {name} does not verify (SHA-256 {verified.sha256}"
                f" sent, {expected} expected)"
            )
        head = self.client.head_object(Bucket=self.bucket, Key=temp)
        if int(head["ContentLength"]) != verified.size:
            raise TargetError(
                f"{self.name}: copy of {name} does not verify in {self.location}"
                f" ({head['ContentLength']} bytes stored, {verified.size} sent)"
            )
        return verified

    def _discard(self, key: str) -> None:
        with contextlib.suppress(BotoCoreError, ClientError):  # a leftover never has a final name
            if self.lock is None:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            else:  # in a versioned bucket, only deleting each version frees the space
                for version in self.versions.of(key):
                    self.client.delete_object(
                        Bucket=self.bucket, Key=key, VersionId=version.version_id
                    )

    def get(self, name: str, dest: Writable, limit: int) -> None:
        """Asks for the first `limit` + 1 bytes only: a longer object costs one byte more.
        (S3 answers a range on an empty object with an error: no range for a limit of 0.)"""
        ranged = {"Range": f"bytes=0-{limit}"} if limit > 0 else {}
        try:
            which = self._object(name)
            body = self.client.get_object(Bucket=self.bucket, **which, **ranged)["Body"]
            with body:
                copy_capped(body, dest, limit, f"{self.name}: {name}", "the most it may hold")
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("download", name, exc) from None

    def stat(self, name: str) -> StoredObject | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, **self._object(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail("stat", name, exc) from None
        except BotoCoreError as exc:
            raise self._fail("stat", name, exc) from None
        return StoredObject(name, int(head["ContentLength"]))

    def delete(self, name: str) -> None:
        try:
            if self.lock is None:
                # An unversioned bucket deletes; a versioned one (without our lock) only adds a
                # delete marker, and its own lifecycle rules decide when old versions go.
                self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
            else:
                self.versions.delete_all(self._key(name), name)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", name, exc) from None

    def lock_of(self, name: str) -> CopyLocked | None:
        if self.lock is None:
            return None
        try:
            return self.versions.lock_of(self._key(name), name)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("read the lock of", name, exc) from None

    def sha256(self, name: str) -> str:
        try:
            body = self.client.get_object(Bucket=self.bucket, **self._object(name))["Body"]
            with body:
                return sha256_stream(body)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("read back", name, exc) from None

    def object_lock_enabled(self) -> bool:
        """Whether the bucket was made with Object Lock (doctor's check; not in `Target`)."""
        try:
            found = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ObjectLockConfigurationNotFoundError":
                return False
            raise self._fail("read the Object Lock configuration of", self.bucket, exc) from None
        except BotoCoreError as exc:
            raise self._fail("read the Object Lock configuration of", self.bucket, exc) from None
        settings = found.get("ObjectLockConfiguration", {})
        return bool(settings.get("ObjectLockEnabled") == "Enabled")
