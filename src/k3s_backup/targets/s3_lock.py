"""S3 Object Lock for the S3 target (s3.py): the bucket is then versioned, each final object is
locked with a retention date, and a name means its oldest version. An overwrite only adds a
newer version and a delete without a version only adds a delete marker, so neither hides what
we stored. Deleting a name removes every version, and is refused (CopyLocked) while any is
locked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from k3s_backup.errors import TargetError
from k3s_backup.plumbing.streams import sha256_stream
from k3s_backup.targets.base import CopyLocked, StoredObject, Verified


@dataclass(frozen=True)
class ObjectLock:
    """How a locking target locks what it stores: the S3 mode, and each final name's
    retain-until date (UTC; None for a name it does not lock)."""

    mode: str  # "GOVERNANCE" or "COMPLIANCE"
    until: Callable[[str], datetime | None]


@dataclass(frozen=True)
class Version:
    key: str
    version_id: str
    size: int
    marker: bool  # a delete marker: no bytes, but a version to remove with the name


class Versions:
    """The versions of a bucket's keys, read and written through the target's client; the
    callers turn boto's errors into the target's."""

    def __init__(self, target: str, client: Any, bucket: str, location: str) -> None:
        self.target = target  # its name, for messages
        self.client = client
        self.bucket = bucket
        self.location = location

    def under(self, prefix: str) -> Iterator[Version]:
        """Every version and delete marker under `prefix`: S3 lists a key's newest first."""
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Versions", []):
                yield Version(item["Key"], item["VersionId"], int(item["Size"]), marker=False)
            for item in page.get("DeleteMarkers", []):
                yield Version(item["Key"], item["VersionId"], 0, marker=True)

    def of(self, key: str) -> tuple[Version, ...]:
        return tuple(v for v in self.under(key) if v.key == key)

    def oldest(self, key: str) -> str | None:
        """The VersionId a name means on a locking target (None: no version holds bytes)."""
        kept = [v for v in self.of(key) if not v.marker]
        return kept[-1].version_id if kept else None

    def listed(self, prefix: str) -> list[StoredObject]:
        """Every name holding a version, with its oldest version's size."""
        oldest: dict[str, Version] = {}
        for version in self.under(prefix):
            if not version.marker:
                oldest[version.key] = version  # newest first: the last one listed stays
        names = ((key[len(prefix) :], v.size) for key, v in oldest.items())
        return [StoredObject(name, size) for name, size in names if name and "/" not in name]

    def lock_new(self, lock: ObjectLock, key: str, name: str) -> None:
        """Lock the version just copied to `key`. A separate PutObjectRetention, not lock
        headers on the copy: boto3's multipart copy (and moto) drop or refuse them there."""
        until = lock.until(name)
        if until is None:
            return
        head = self.client.head_object(Bucket=self.bucket, Key=key)
        if until <= server_time(head):
            return  # a caught-up copy older than its retention: rotation removes it now
        self.client.put_object_retention(
            Bucket=self.bucket,
            Key=key,
            VersionId=head["VersionId"],
            Retention={"Mode": lock.mode, "RetainUntilDate": until},
        )

    def already_held(self, key: str, name: str, version: str, verified: Verified) -> Verified:
        """A locking target keeps the first version of a name: another `put` (a run shipping
        again after one was cut short) succeeds only if that version holds the same bytes."""
        head = self.client.head_object(Bucket=self.bucket, Key=key, VersionId=version)
        if int(head["ContentLength"]) == verified.size:
            body = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version)["Body"]
            with body:
                if sha256_stream(body) == verified.sha256:
                    return verified
        until = head.get("ObjectLockRetainUntilDate")
        raise TargetError(
            f"{self.target}: {self.location} already holds other bytes under {name}, which"
            " Object Lock keeps (the first version of a name is the one read)"
            + (f" until {when(until)}" if until else "")
            + ": it cannot be replaced; check who wrote it (`aws s3api list-object-versions"
            f" --bucket {self.bucket} --prefix {key}`)"
        )

    def delete_all(self, key: str, name: str) -> None:
        """Every version of `key`, once none is locked: never a delete S3 would refuse."""
        versions = self.of(key)
        for version in versions:
            if not version.marker:
                self.refuse_if_locked(name, version)
        for version in versions:
            self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version.version_id)

    def lock_of(self, key: str, name: str) -> CopyLocked | None:
        try:
            for version in self.of(key):
                if not version.marker:
                    self.refuse_if_locked(name, version)
        except CopyLocked as locked:
            return locked
        return None

    def refuse_if_locked(self, name: str, version: Version) -> None:
        head = self.client.head_object(
            Bucket=self.bucket, Key=version.key, VersionId=version.version_id
        )
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            raise CopyLocked(f"{self.target}: {name} is under a legal hold", None)
        until = head.get("ObjectLockRetainUntilDate")
        if head.get("ObjectLockMode") and until is not None and until > server_time(head):
            raise CopyLocked(f"{self.target}: {name} is locked until {when(until)}", until)


def server_time(response: dict[str, Any]) -> datetime:
    """The S3 server's clock (its Date header): the one a lock's expiry is judged by."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date) if date else datetime.now(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
