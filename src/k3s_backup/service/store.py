"""The backup directory as the service touches it: one directory file descriptor, and every
operation relative to it with a plain file name (never a path), O_NOFOLLOW throughout.

A name reaching here has been checked against our naming pattern (server.py), so it holds no
`/`, no `..` and no NUL; the descriptor-relative calls are the second fence: even a name that
slipped through cannot leave the directory or follow a symlink planted in it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from k3s_backup.targets.base import final_of_temp, temp_name

CHUNK = 1 << 20
MAX_MANIFEST = 64 << 10  # as catalogue/manifest.py: ours are ~600 bytes
MAX_ENTRIES = 200_000  # a listing longer than this is no directory of ours
STALE_TEMP_SECONDS = 24 * 3600  # a temporary this old has no upload behind it any more


class StoreError(Exception):
    """An operation the directory refused; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    mtime: float


def _os_error(what: str, exc: OSError) -> StoreError:
    if exc.errno == errno.ENOSPC:
        return StoreError("no-space", f"{what}: the backup host's disk is full")
    return StoreError("io", f"{what}: {exc.strerror or exc}")


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StoreError("no-root", f"{root} does not exist on the backup host") from None
        except OSError as exc:
            raise StoreError(
                "no-root", f"cannot open the backup directory {root}: {exc.strerror or exc}"
            ) from None

    def close(self) -> None:
        os.close(self.fd)

    def free(self) -> tuple[int, int]:
        """(bytes free to us, bytes of the whole filesystem)."""
        info = os.statvfs(self.fd)
        return info.f_bavail * info.f_frsize, info.f_blocks * info.f_frsize

    def entries(self) -> list[Entry]:
        """Regular files (not followed through symlinks) with UTF-8 names."""
        found: list[Entry] = []
        with os.scandir(self.fd) as scan:
            for item in scan:
                if len(found) >= MAX_ENTRIES:
                    raise StoreError("too-many", f"{self.root} holds over {MAX_ENTRIES} files")
                try:
                    item.name.encode()
                    info = item.stat(follow_symlinks=False)
                except (UnicodeEncodeError, OSError):
                    continue  # not a name we could ever have written, or gone meanwhile
                if stat.S_ISREG(info.st_mode):
                    found.append(Entry(item.name, info.st_size, info.st_mtime))
        return found

    def stat(self, name: str) -> Entry | None:
        try:
            info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(name, exc) from None
        return Entry(name, info.st_size, info.st_mtime) if stat.S_ISREG(info.st_mode) else None

    def open_read(self, name: str) -> tuple[BinaryIO, int]:
        """The file and the size it has now; only a regular file, never through a symlink."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except FileNotFoundError:
            raise StoreError("not-found", f"{name} is not on the backup host") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink: never followed
                raise StoreError("not-found", f"{name} is not a regular file there") from None
            raise _os_error(name, exc) from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise StoreError("not-found", f"{name} is not a regular file on the backup host")
        return os.fdopen(fd, "rb", buffering=0), info.st_size

    def sha256(self, name: str) -> str:
        stream, _size = self.open_read(name)
        with stream:
            digest = hashlib.sha256()
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
            return digest.hexdigest()

    def read_manifest(self, name: str) -> dict[str, object] | None:
        """A manifest's JSON object, or None when it is absent, too big or no JSON object."""
        try:
            stream, size = self.open_read(name)
        except StoreError:
            return None
        with stream:
            if size > MAX_MANIFEST:
                return None
            try:
                data = json.loads(stream.read(MAX_MANIFEST + 1))
            except (ValueError, RecursionError, OSError):
                return None
        return data if isinstance(data, dict) else None

    def delete(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _os_error(name, exc) from None

    def writer(self, final: str) -> Incoming:
        return Incoming(self, final)

    def stale_temporaries(self, now: float) -> Iterator[str]:
        for entry in self.entries():
            if final_of_temp(entry.name) is not None and now - entry.mtime > STALE_TEMP_SECONDS:
                yield entry.name


class Incoming:
    """One upload: a 0600 temporary created with O_EXCL|O_NOFOLLOW, hashed while written,
    published by link(2) under its final name, which never replaces an existing file."""

    def __init__(self, store: Store, final: str) -> None:
        self.store = store
        self.final = final
        self.temp = temp_name(final)
        self.size = 0
        self.hash = hashlib.sha256()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self.fd: int | None = os.open(self.temp, flags, 0o600, dir_fd=store.fd)
        except OSError as exc:
            raise _os_error(f"cannot create a temporary for {final}", exc) from None
        os.fchmod(self.fd, 0o600)  # a umask cannot widen it, but say it outright

    def write(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
        except OSError as exc:
            raise _os_error(f"cannot write {self.final}", exc) from None
        self.hash.update(data)
        self.size += len(data)

    def publish(self) -> tuple[int, str, bool]:
        """Flush to disk and give the copy its final name: (size, sha256, whether an identical
        copy was there already). StoreError "exists" if another copy holds the name."""
        assert self.fd is not None
        digest = self.hash.hexdigest()
        try:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
            try:
                os.link(self.temp, self.final, src_dir_fd=self.store.fd, dst_dir_fd=self.store.fd)
            except FileExistsError:
                return self._already_there(digest)
            os.fsync(self.store.fd)  # the new name survives a power cut
        except OSError as exc:
            raise _os_error(f"cannot store {self.final}", exc) from None
        finally:
            self.discard()
        return self.size, digest, False

    def _already_there(self, digest: str) -> tuple[int, str, bool]:
        """A retried upload of the same bytes succeeds; anything else never replaces it."""
        try:
            existing = self.store.sha256(self.final)
        except StoreError:
            existing = ""
        if existing != digest:
            raise StoreError(
                "exists",
                f"{self.final} is already on the backup host with other contents; the"
                " service never overwrites a copy",
            )
        return self.size, digest, True

    def discard(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        with contextlib.suppress(OSError):
            os.unlink(self.temp, dir_fd=self.store.fd)


def now() -> float:
    return time.time()
