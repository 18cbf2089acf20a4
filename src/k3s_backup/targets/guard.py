"""A wrapper that lets only our own names reach a backend (like restic's wrappers around one).

Every name is checked against the cluster's naming pattern before any operation, so a bug or a
hostile listing can never make us write, read or delete a file we did not make.
"""

from __future__ import annotations

from k3s_backup.errors import TargetError
from k3s_backup.plumbing.streams import Readable, Writable
from k3s_backup.policy import naming
from k3s_backup.targets.base import (
    CopyLocked,
    Digest,
    StoredObject,
    Target,
    Verified,
    final_of_temp,
)


class OwnNamesOnly(Target):
    def __init__(self, inner: Target, cluster: str) -> None:
        self.inner = inner
        self.cluster = cluster
        self.kind = inner.kind
        self.name = inner.name

    @property
    def location(self) -> str:
        return self.inner.location

    def _check(self, name: str) -> str:
        if naming.is_our_file(self.cluster, name):
            return name
        raise TargetError(f"{self.name}: refusing to touch {name!r}: not a k3s-backup file name")

    def list(self) -> list[StoredObject]:
        return self.inner.list()

    def put(self, name: str, source: Readable, sha256: Digest = None) -> Verified:
        return self.inner.put(self._check(name), source, sha256)

    def get(self, name: str, dest: Writable, limit: int) -> None:
        self.inner.get(self._check(name), dest, limit)

    def stat(self, name: str) -> StoredObject | None:
        return self.inner.stat(self._check(name))

    def delete(self, name: str) -> None:
        """Our names, and the temporary uploads of our names (a killed run leaves them)."""
        final = final_of_temp(name)
        self.inner.delete(name if final is not None and self._check(final) else self._check(name))

    def lock_of(self, name: str) -> CopyLocked | None:
        return self.inner.lock_of(self._check(name))

    def sha256(self, name: str) -> str:
        return self.inner.sha256(self._check(name))

    def close(self) -> None:
        self.inner.close()

    def unwrap(self) -> Target:
        """The backend, for its probes (setup, doctor): names are not checked there."""
        return self.inner
