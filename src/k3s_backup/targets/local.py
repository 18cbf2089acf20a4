"""A directory on this machine (a mounted NAS, a USB disk): write, fsync, verify, rename."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from k3s_backup.errors import TargetError
from k3s_backup.plumbing.streams import (
    Readable,
    Writable,
    copy_capped,
    copy_stream,
    open_regular,
    sha256_stream,
)
from k3s_backup.targets.base import Digest, Outgoing, StoredObject, Target, Verified, temp_name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalTarget(Target):
    kind = "local"

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory

    @property
    def location(self) -> str:
        return str(self.directory)

    # -- probes, for setup and doctor ------------------------------------------------------

    def connect(self) -> None:
        """Nothing to reach: the directory is on this machine."""

    def directory_exists(self) -> bool:
        return self.directory.is_dir()

    def ensure_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise TargetError(
                f"{self.name}: cannot create {self.directory}: {exc.strerror}"
            ) from exc

    def check_writable(self) -> None:
        probe = self.directory / temp_name("k3s-backup-write-probe")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            probe.unlink()
        except OSError as exc:
            path = shlex.quote(str(self.directory))
            raise TargetError(
                f"{self.name}: {self.directory} is not writable ({exc.strerror}): `chown"
                f" $(id -un) {path} && chmod 700 {path}`"
            ) from None

    def free_space(self) -> int | None:
        try:
            return shutil.disk_usage(self.directory).free
        except OSError:
            return None

    def _no_directory(self) -> TargetError:
        """A wrong `path` (or a disk not mounted) must not become a new, empty tree."""
        path = shlex.quote(str(self.directory))
        return TargetError(
            f"{self.name}: {self.directory} does not exist; check `path` in the config (is the"
            f" disk mounted?), or create it: `mkdir -m 700 {path}`"
        )

    def list(self) -> list[StoredObject]:
        if not self.directory.is_dir():
            raise self._no_directory()
        found = []
        for entry in os.scandir(self.directory):
            if entry.is_file(follow_symlinks=False):
                found.append(StoredObject(entry.name, entry.stat(follow_symlinks=False).st_size))
        return found

    def put(self, name: str, source: Readable, sha256: Digest = None) -> Verified:
        temp = self.directory / temp_name(name)
        outgoing = Outgoing(source, sha256)
        try:
            self._write(temp, outgoing)
            with temp.open("rb") as written:
                stored = sha256_stream(written)
            if stored != outgoing.expected():
                raise TargetError(
                    f"{self.name}: copy of {name} does not verify"
                    f" (SHA-256 {stored} stored, {outgoing.expected()} expected)"
                )
            os.replace(temp, self.directory / name)
            _fsync_dir(self.directory)
        except OSError as exc:
            if not self.directory.is_dir():
                raise self._no_directory() from None
            raise TargetError(
                f"{self.name}: cannot write {name} in {self.directory}: {exc.strerror}"
            ) from exc
        finally:
            temp.unlink(missing_ok=True)
        return outgoing.verified()

    @staticmethod
    def _write(temp: Path, source: Readable) -> None:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            copy_stream(source, out)
            out.flush()
            os.fsync(out.fileno())

    def get(self, name: str, dest: Writable, limit: int) -> None:
        """Our files only: a symlink planted under one of our names (to /dev/zero, to a file
        elsewhere) is refused, never followed."""
        try:
            with open_regular(self.directory / name) as stored:
                copy_capped(stored, dest, limit, f"{self.name}: {name}", "the most it may hold")
        except OSError as exc:
            raise TargetError(f"{self.name}: cannot read {name}: {exc.strerror}") from exc

    def stat(self, name: str) -> StoredObject | None:
        """The entry itself, not what a symlink there points to (`get` refuses symlinks)."""
        try:
            return StoredObject(name, (self.directory / name).lstat().st_size)
        except FileNotFoundError:
            return None

    def delete(self, name: str) -> None:
        try:
            (self.directory / name).unlink(missing_ok=True)
        except OSError as exc:
            raise TargetError(f"{self.name}: cannot delete {name}: {exc.strerror}") from exc

    def sha256(self, name: str) -> str:
        try:
            with open_regular(self.directory / name) as stored:
                return sha256_stream(stored)
        except OSError as exc:
            raise TargetError(f"{self.name}: cannot read {name}: {exc.strerror}") from exc
