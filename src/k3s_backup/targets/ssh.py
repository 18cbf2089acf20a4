"""A directory on a backup host over SFTP, through one SSH session (ssh/session.py) per run.

Remote commands are limited to `sha256sum` (so verifying a copy does not mean downloading it
again); its argument is a validated name inside the configured directory, quoted by the session.
Only `setup` creates the directory (`ensure_directory`): a missing one fails every other command
with its path and the fix, so a mistyped `path` never becomes a new, empty tree.
"""

from __future__ import annotations

import posixpath
import shlex
import stat as stat_module

import paramiko

from k3s_backup.errors import TargetError
from k3s_backup.plumbing.streams import CHUNK_SIZE, Readable, Writable, copy_capped, sha256_stream
from k3s_backup.ssh import paramiko_quirks as quirks
from k3s_backup.ssh.errors import CONNECTION_ERRORS, reason
from k3s_backup.ssh.session import SshSession
from k3s_backup.targets.base import Digest, Outgoing, StoredObject, Target, Verified, temp_name

NEARLY_FULL = 4 * CHUNK_SIZE  # free bytes under which a failed write is called a full disk
READ_BACK_LIMIT = CHUNK_SIZE  # copies up to this size are hashed by reading them back
NO_SHA256SUM = 127  # the shell's status for a command it cannot find


def missing_directory_fix(name: str, user: str, host: str, path: str) -> str:
    """What to do about a configured directory the backup host lacks: nothing but setup makes
    it, so a mistyped `path` never quietly becomes a new, empty tree."""
    quoted = shlex.quote(path)
    return (
        f"if `path` of target {name!r} is mistyped, correct it in the config; if it is right,"
        f" create it: `k3s-backup setup`, or on {host}:"
        f" `mkdir -p -m 700 {quoted} && chown {shlex.quote(user)} {quoted}`"
    )


class SshTarget(Target):
    kind = "ssh"

    def __init__(self, name: str, session: SshSession, path: str) -> None:
        self.name = name
        self.session = session
        self.path = path
        self._sizes: quirks.RequestSizes | None = None  # the server's, asked once

    @property
    def location(self) -> str:
        s = self.session
        return f"{s.user}@{s.host}:{s.port}:{self.path}"

    def connect(self) -> None:
        """Open the connection and its SFTP channel now, so a run reports a down host before
        any upload."""
        self.session.sftp()

    def close(self) -> None:
        self.session.close()

    # -- helpers ----------------------------------------------------------------------------

    def _remote(self, name: str) -> str:
        return posixpath.join(self.path, name)

    def _no_directory(self) -> TargetError:
        """A wrong `path` must not become a new tree that every later command finds empty."""
        return TargetError(
            f"{self.name}: {self.path} does not exist on {self.session.host}; check `path` in"
            " the config, or run `k3s-backup setup` to create it"
        )

    # -- probes, for setup and doctor (only setup creates the directory) -------------------

    def ensure_directory(self) -> None:
        """Create the configured directory (and parents) 0700 if missing."""
        sftp = self.session.sftp()
        current = "/"
        try:
            for part in [p for p in self.path.split("/") if p]:
                current = posixpath.join(current, part)
                try:
                    sftp.stat(current)
                except FileNotFoundError:
                    sftp.mkdir(current, mode=0o700)
                    sftp.chmod(current, 0o700)  # the server's umask must not widen it
        except CONNECTION_ERRORS as exc:
            raise self.session.failure("create", current, exc) from None

    def directory_exists(self) -> bool:
        sftp = self.session.sftp()
        try:
            return stat_module.S_ISDIR(sftp.stat(self.path).st_mode or 0)
        except FileNotFoundError:
            return False
        except CONNECTION_ERRORS as exc:
            raise self.session.failure("stat", self.path, exc) from None

    def check_writable(self) -> None:
        """Write and remove a small hidden probe file; TargetError if the server refuses."""
        sftp = self.session.sftp()
        probe = self._remote(temp_name("k3s-backup-write-probe"))
        try:
            with sftp.open(probe, "wb") as remote:
                remote.write(b"k3s-backup write probe\n")
            sftp.remove(probe)
        except CONNECTION_ERRORS as exc:
            self._discard(probe)
            user, path = shlex.quote(self.session.user), shlex.quote(self.path)
            raise TargetError(
                f"{self.path} on {self.session.host} is not writable by {self.session.user}"
                f" ({reason(exc)}): on the backup host, `chown {user} {path} && chmod 700 {path}`"
            ) from None

    def free_space(self) -> int | None:
        """Bytes available to us in the directory, or None when the server does not say."""
        return quirks.free_bytes(self.session.sftp(), self.path)

    # -- the interface ----------------------------------------------------------------------

    def list(self) -> list[StoredObject]:
        sftp = self.session.sftp()
        try:
            entries = sftp.listdir_attr(self.path)
        except FileNotFoundError:
            raise self._no_directory() from None
        except CONNECTION_ERRORS as exc:
            raise self.session.failure("list", self.path, exc) from None
        return [
            StoredObject(entry.filename, entry.st_size or 0)
            for entry in entries
            if entry.st_mode is not None and stat_module.S_ISREG(entry.st_mode)
        ]

    def put(self, name: str, source: Readable, sha256: Digest = None) -> Verified:
        sftp = self.session.sftp()
        temp = self._remote(temp_name(name))
        outgoing = Outgoing(source, sha256)
        try:
            self._write(sftp, temp, outgoing)
            # A small file (manifest, bundle) is read back over SFTP: one round trip, where a
            # remote sha256sum costs a new SSH session (~0.1 s each on loopback).
            if outgoing.size <= READ_BACK_LIMIT:
                stored = self._read_back_sha256(temp)
            else:
                stored = self._remote_sha256(temp)
            if stored != outgoing.expected():
                raise TargetError(
                    f"{self.name}: copy of {name} does not verify on {self.session.host}"
                    f" (SHA-256 {stored} stored, {outgoing.expected()} expected)"
                )
            sftp.posix_rename(temp, self._remote(name))
        except FileNotFoundError as exc:
            if not self.directory_exists():
                raise self._no_directory() from None
            self._discard(temp)
            raise self.session.failure("upload", f"{name} to {self.path}", exc) from None
        except CONNECTION_ERRORS as exc:
            full = self._full_disk()  # before the temporary's space is given back
            self._discard(temp)
            raise self.session.failure("upload", f"{name} to {self.path}", exc, full) from None
        except BaseException:  # not verified, or the source failed: no temporary left either
            self._discard(temp)
            raise
        return outgoing.verified()

    def _write(self, sftp: paramiko.SFTPClient, temp: str, outgoing: Outgoing) -> None:
        with quirks.create_private(sftp, temp) as remote:
            sftp.chmod(temp, 0o600)  # a server that ignored the open's mode: still 0600
            remote.set_pipelined(True)
            remote.MAX_REQUEST_SIZE = self._request_sizes(sftp).write  # paramiko's, per file
            while chunk := outgoing.read(CHUNK_SIZE):
                remote.write(chunk)
            remote.flush()
            quirks.wait_for_writes(sftp, remote)

    def _request_sizes(self, sftp: paramiko.SFTPClient) -> quirks.RequestSizes:
        if self._sizes is None:
            self._sizes = quirks.request_sizes(sftp)
        return self._sizes

    def _open_prefetched(self, path: str, limit: int | None = None) -> paramiko.SFTPFile:
        """`path` opened for reading, its reads (up to `limit` bytes) asked for ahead in the
        server's largest requests."""
        sftp = self.session.sftp()
        remote = sftp.open(path, "rb")
        try:
            remote.MAX_REQUEST_SIZE = self._request_sizes(sftp).read  # paramiko's, per file
            quirks.prefetch_quietly(remote, limit)
        except BaseException:
            remote.close()
            raise
        return remote

    def _full_disk(self) -> str:
        """ "; the disk there is full (N bytes free)" when it is, to explain a failed write."""
        try:
            free = self.free_space()
        except TargetError:  # free_bytes turns connection errors into None itself
            return ""
        if free is None or free >= NEARLY_FULL:
            return ""
        return f"; the disk there is full ({free} bytes free in {self.path})"

    def _discard(self, temp: str) -> None:
        """Best effort: a dead connection leaves the temporary, which never has a final name."""
        try:
            self.session.sftp().remove(temp)
        except TargetError:  # no SFTP channel to be had any more
            pass
        except CONNECTION_ERRORS:
            pass

    def get(self, name: str, dest: Writable, limit: int) -> None:
        try:
            with self._open_prefetched(self._remote(name), limit + 1) as remote:
                copy_capped(remote, dest, limit, f"{self.name}: {name}", "the most it may hold")
        except CONNECTION_ERRORS as exc:
            raise self.session.failure("download", name, exc) from None

    def stat(self, name: str) -> StoredObject | None:
        sftp = self.session.sftp()
        try:
            attrs = sftp.stat(self._remote(name))
        except FileNotFoundError:
            return None
        except CONNECTION_ERRORS as exc:
            raise self.session.failure("stat", name, exc) from None
        return StoredObject(name, attrs.st_size or 0)

    def delete(self, name: str) -> None:
        sftp = self.session.sftp()
        try:
            sftp.remove(self._remote(name))
        except FileNotFoundError:
            pass
        except CONNECTION_ERRORS as exc:
            raise self.session.failure("delete", name, exc) from None

    def sha256(self, name: str) -> str:
        return self._remote_sha256(self._remote(name))

    def _remote_sha256(self, path: str) -> str:
        """Hash on the backup host with sha256sum; read the file back if it has none."""
        timeout = max(self.session.connect_timeout, 60.0) * 20
        result = self.session.exec(["sha256sum", "--", path], timeout)
        digest = result.output.split(" ", 1)[0].strip()
        if result.status == 0 and len(digest) == 64:
            return digest
        if result.status == NO_SHA256SUM:  # no sha256sum there: hash what the server gives back
            return self._read_back_sha256(path)
        raise TargetError(
            f"{self.name}: sha256sum of {path} failed on {self.session.host} ({result.status})"
        )

    def _read_back_sha256(self, path: str) -> str:
        try:
            with self._open_prefetched(path) as remote:
                return sha256_stream(remote)
        except CONNECTION_ERRORS as exc:
            raise self.session.failure("read back", path, exc) from None
