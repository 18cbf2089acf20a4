"""The one small interface every place that stores copies implements (restic's backend idea).

The rest of the program never knows where bytes go: it lists, puts, gets, stats and deletes names.
`put` is atomic and verified: nothing half-written or unverified ever carries a final name.
Its source may be a stream encoded while it is read, whose digest nobody knows beforehand: the
target then verifies the stored copy against what it read. Or the digest is known only once the
source is drained (a snapshot checked as it is read): the target asks for it then.

Beside it, one capability for setup and doctor (`Probes`: is the place there, can we write,
how much room), which every backend offers and wrappers pass through `unwrap()` (restic's
Unwrapper): `probes_of(target)` finds it under any wrappers.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from k3s_backup.errors import TargetError
from k3s_backup.plumbing.closable import Closable
from k3s_backup.plumbing.streams import HashingReader, Readable, Writable

TEMP_MARK = ".partial-"
_TEMP_RE = re.compile(r"\.(?P<final>.+)\.partial-[0-9a-f]{8}", re.DOTALL)


class CopyLocked(TargetError):
    """`delete` refused before trying: the backend keeps the object under a retention lock
    (S3 Object Lock) until `until`, or indefinitely (a legal hold) when None. Not a failure:
    rotation reports it and removes the copy once the lock has expired."""

    def __init__(self, message: str, until: datetime | None) -> None:
        super().__init__(message)
        self.until = until


@dataclass(frozen=True)
class StoredObject:
    """Any file a target lists, ours or not; those of ours are catalogue.inventory.Copy."""

    name: str
    size: int


@dataclass(frozen=True)
class Verified:
    """What a `put` stored under its final name: size and SHA-256, checked where stored."""

    size: int
    sha256: str


# The SHA-256 a put's copy must have: given, given once the source is drained (asked only then),
# or None: that of the bytes read from the source.
Digest = str | Callable[[], str] | None


def given_digest(sha256: Digest) -> str | None:
    """The digest a put was given; call once its source is drained."""
    return sha256() if callable(sha256) else sha256


class Outgoing:
    """A put's source as the backend reads it: counted and, unless the digest the copy must
    have was given, hashed on the way, so the stored copy is checked against the bytes sent."""

    def __init__(self, source: Readable, sha256: Digest) -> None:
        self.given = sha256
        self.reader = HashingReader(source, hashing=sha256 is None)

    def read(self, size: int = -1, /) -> bytes:
        return self.reader.read(size)

    @property
    def size(self) -> int:
        return self.reader.size

    def expected(self) -> str:
        """The SHA-256 the stored copy must have; call once the source is drained."""
        given = given_digest(self.given)
        return given if given is not None else self.reader.hexdigest()

    def verified(self) -> Verified:
        return Verified(self.size, self.expected())


def put_bytes(target: Target, name: str, body: bytes) -> Verified:
    return target.put(name, io.BytesIO(body), hashlib.sha256(body).hexdigest())


def temp_name(final: str) -> str:
    """A hidden, unique name for an upload in progress; never matches a final-name pattern."""
    return f".{final}{TEMP_MARK}{secrets.token_hex(4)}"


def final_of_temp(name: str) -> str | None:
    """The final name a temporary upload was meant for, or None if `name` is not exactly the
    shape temp_name() makes."""
    match = _TEMP_RE.fullmatch(name)
    return match["final"] if match else None


class Target(Closable, ABC):
    """Where copies go. `kind` and `name` describe it in messages; `location` says where."""

    kind: str
    name: str

    @property
    @abstractmethod
    def location(self) -> str: ...

    @abstractmethod
    def list(self) -> list[StoredObject]:
        """Every regular file in the target's directory, temporary uploads included."""

    @abstractmethod
    def put(self, name: str, source: Readable, sha256: Digest = None) -> Verified:
        """Store `source` as `name`: write a temporary, check its SHA-256 where it is stored,
        then rename. The copy must hash to `sha256` (a callable: asked once `source` is
        drained), or, when None (a stream encoded while it is read), to what was read from
        `source` (see `Outgoing`). Raises TargetError, or what reading `source` raised,
        leaving no file under `name`."""

    @abstractmethod
    def get(self, name: str, dest: Writable, limit: int) -> None:
        """Write the stored bytes of `name` to `dest`: at most `limit` bytes (what its listing
        or manifest announced, or a sidecar's fixed cap), never reading more than one byte
        past it. RefusedInput if it holds more; TargetError if it cannot be read."""

    @abstractmethod
    def stat(self, name: str) -> StoredObject | None: ...

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove `name` (nothing if absent); CopyLocked, deleting nothing, if a retention
        lock keeps it."""

    def lock_of(self, name: str) -> CopyLocked | None:
        """What `delete(name)` would raise now: the retention lock keeping it, if any. None
        for a backend without locks."""
        return None

    @abstractmethod
    def sha256(self, name: str) -> str:
        """The SHA-256 of the stored bytes, computed as close to them as the backend allows."""


@runtime_checkable
class Probes(Protocol):
    """What setup and doctor ask of a backend's place before any copy goes there. Only setup
    creates the place (`ensure_directory`): every other command fails on a missing one."""

    def connect(self) -> None:
        """Reach the place now (SSH: connect and authenticate), raising what a first
        operation would."""

    def directory_exists(self) -> bool: ...

    def ensure_directory(self) -> None:
        """Create the directory 0700 (with its parents) if missing; S3: a missing bucket is
        a TargetError naming it (buckets are made with the provider's tools)."""

    def check_writable(self) -> None:
        """Write and remove a small hidden probe; TargetError naming the fix if refused."""

    def free_space(self) -> int | None:
        """Bytes available there, or None when the backend cannot tell."""


@runtime_checkable
class Unwrapper(Protocol):
    """A target wrapping another (the name guard, retries): the one it wraps."""

    def unwrap(self) -> Target: ...


def probes_of(target: Target) -> Probes:
    """The probes of the backend under any wrappers."""
    inner: Target = target
    while not isinstance(inner, Probes):
        if not isinstance(inner, Unwrapper):
            raise TypeError(f"{type(inner).__name__} offers no probes and wraps no target")
        inner = inner.unwrap()
    return inner
