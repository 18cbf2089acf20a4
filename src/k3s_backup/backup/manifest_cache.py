"""A run reads every manifest on a target twice (what the target holds before shipping, then
again for its rotation), and those of the copies it holds locally a third time (are they
ours?): each a few round trips. Within one run a manifest changes only when this run writes or
deletes it (names are per node and second), so each is fetched once and forgotten on our own
put or delete of its name."""

from __future__ import annotations

import io

from k3s_backup.plumbing.streams import Readable, Writable
from k3s_backup.policy.naming import MANIFEST_SUFFIX
from k3s_backup.targets.base import CopyLocked, StoredObject, Target, Verified


class ManifestsReadOnce(Target):
    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.name = inner.name
        self._read: dict[str, bytes] = {}

    @property
    def location(self) -> str:
        return self.inner.location

    def list(self) -> list[StoredObject]:
        return self.inner.list()

    def get(self, name: str, dest: Writable, limit: int) -> None:
        body = self._read.get(name)
        if body is None or len(body) > limit:  # the backend refuses what is over `limit`
            if not name.endswith(MANIFEST_SUFFIX):
                self.inner.get(name, dest, limit)
                return
            buffer = io.BytesIO()
            self.inner.get(name, buffer, limit)
            body = self._read[name] = buffer.getvalue()
        dest.write(body)

    def put(self, name: str, source: Readable, sha256: str | None = None) -> Verified:
        self._read.pop(name, None)
        return self.inner.put(name, source, sha256)

    def delete(self, name: str) -> None:
        self._read.pop(name, None)
        self.inner.delete(name)

    def stat(self, name: str) -> StoredObject | None:
        return self.inner.stat(name)

    def lock_of(self, name: str) -> CopyLocked | None:
        return self.inner.lock_of(name)

    def sha256(self, name: str) -> str:
        return self.inner.sha256(name)

    def close(self) -> None:
        self.inner.close()

    def unwrap(self) -> Target:
        return self.inner
