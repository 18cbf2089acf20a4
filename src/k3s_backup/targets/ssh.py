"""A directory on a backup host over SSH/SFTP (paramiko): one connection per run.

Host keys are checked against `known_hosts` and never accepted silently. Remote commands are
limited to `sha256sum` (so verifying a copy does not mean downloading it again); their arguments
are validated names inside the configured directory and are quoted with shlex, never pasted.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import posixpath
import shlex
import socket
import stat as stat_module
import struct
from pathlib import Path
from typing import Any

import paramiko
from paramiko.ssh_exception import NoValidConnectionsError

from k3s_backup.errors import HostKeyError, TargetError, TargetUnreachable
from k3s_backup.plumbing.streams import (
    CHUNK_SIZE,
    Readable,
    Writable,
    copy_capped,
    sha256_stream,
)
from k3s_backup.ssh.keyfile import load_private_key
from k3s_backup.targets.base import Outgoing, StoredObject, Target, Verified, temp_name

STATVFS_EXTENSION = "statvfs@openssh.com"
LIMITS_EXTENSION = "limits@openssh.com"
# SFTP write requests: paramiko's 32 KiB costs a Python round of packing per 32 KiB; OpenSSH's
# sftp-server (8.6+) announces what it takes (255 KiB), and 256 KiB requests upload ~2x faster.
# Servers that do not announce a limit get the 32 KiB every SFTP server accepts.
DEFAULT_WRITE_SIZE = 32768
MAX_WRITE_SIZE = 256 * 1024
NEARLY_FULL = 4 * CHUNK_SIZE  # free bytes under which a failed write is called a full disk
READ_BACK_LIMIT = CHUNK_SIZE  # copies up to this size are hashed by reading them back
# What a dead or cut connection raises in paramiko: socket errors, protocol errors, and EOFError
# from its packetizer (a send on a reset socket, a read at end of stream). EOFError must never
# escape: click would turn it into "Aborted." and exit 1 instead of a target failure.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, paramiko.SSHException)


# errno values of a failing link, as opposed to the SFTP server's answers (EACCES, ENOENT, ...),
# which paramiko raises as OSError too.
_LINK_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.ETIMEDOUT}
)


def _link_failed(exc: BaseException) -> bool:
    """A cut, reset, refused or timed-out connection, which a later attempt may not meet; not
    the host refusing our key, a permission or a name."""
    if isinstance(exc, paramiko.AuthenticationException):
        return False
    if isinstance(exc, NoValidConnectionsError):  # every address refused or unreachable
        return any(_link_failed(error) for error in exc.errors.values())
    if isinstance(exc, (EOFError, paramiko.SSHException, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, socket.gaierror):  # only "try again" is a blip; an unknown name is not
        return exc.errno == socket.EAI_AGAIN
    return isinstance(exc, OSError) and exc.errno in _LINK_ERRNOS


# paramiko's words for what a user sees, and ours for them.
_PLAIN_WORDS = {
    "Error reading SSH protocol banner": (
        "no SSH server answered there (it sent no SSH banner); check the host and the port"
    ),
    "No existing session": (
        "the server closed the connection before the key was checked (see its sshd log:"
        " MaxStartups, a firewall, AllowUsers)"
    ),
}


def _reason(exc: BaseException) -> str:
    """What went wrong, for a message: the OS's words when there are some, plain words for
    paramiko's own."""
    if isinstance(exc, NoValidConnectionsError):  # "Unable to connect to port 22 on ...": why?
        return "; ".join(sorted({_reason(error) for error in exc.errors.values()}))
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return next((plain for said, plain in _PLAIN_WORDS.items() if text.startswith(said)), text)


def _wait_for_writes(sftp: paramiko.SFTPClient, remote: paramiko.SFTPFile) -> None:
    """Read the status of every pipelined write still unanswered, raising on the first error.

    paramiko files pipelined writes under no file object and drops their replies on close, so
    a server's "write failed" (a full disk) would go unseen until the checksum differs."""
    pending = remote._reqs  # type: ignore[attr-defined]  # no public way to wait for them
    while pending:
        sftp._read_response(pending.popleft())  # type: ignore[attr-defined]


def _transport(sock: Any, /, **options: Any) -> paramiko.Transport:
    """AES-GCM first: paramiko's default AES-CTR + HMAC-SHA-256 hashes every byte a second time
    in Python's thread; GCM authenticates while encrypting (~20 % faster uploads here). Every
    cipher paramiko offers stays acceptable for servers without GCM (OpenSSH has it since 6.2)."""
    transport = paramiko.Transport(sock, **options)
    security = transport.get_security_options()
    security.ciphers = sorted(security.ciphers, key=lambda name: "-gcm@" not in name)
    return transport


def _write_size(sftp: paramiko.SFTPClient) -> int:
    """The largest SFTP write request the server accepts, up to MAX_WRITE_SIZE."""
    try:
        _kind, message = sftp._request(  # type: ignore[attr-defined]  # no public call
            paramiko.sftp.CMD_EXTENDED, LIMITS_EXTENSION
        )
    except CONNECTION_ERRORS:
        return DEFAULT_WRITE_SIZE  # no such extension: the size every server takes
    if message is None:
        return DEFAULT_WRITE_SIZE
    _packet, _read, write, _handles = struct.unpack(
        ">4Q", message.get_remainder()[:32].ljust(32, b"\0")
    )
    return min(int(write), MAX_WRITE_SIZE) if write else DEFAULT_WRITE_SIZE


class KeyRefusedError(TargetError):
    """The backup host refused our key (it is not in authorized_keys there)."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:<base64 without padding>."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_host(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def fetch_host_key(
    host: str, port: int, timeout: float, key_types: list[str] | None = None
) -> paramiko.PKey:
    """The key the server offers, before any authentication (what `ssh-keyscan` shows).
    `key_types` limits the algorithms offered, to compare with a known_hosts entry."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise TargetError(f"cannot connect to {host}:{port}: {_reason(exc)}") from None
    transport = paramiko.Transport(sock)
    try:
        if key_types:
            transport.get_security_options().key_types = key_types
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except CONNECTION_ERRORS as exc:
        raise TargetError(
            f"{host}:{port} did not complete an SSH handshake: {_reason(exc)}"
        ) from None
    finally:
        transport.close()


def known_hosts_line(host: str, port: int, key: paramiko.PKey) -> str:
    return f"{known_hosts_host(host, port)} {key.get_name()} {key.get_base64()}"


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Refuse an unknown host key, telling the operator how to check and trust it."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        t = self.target
        raise HostKeyError(
            f"{t.name}: the host key of {known_hosts_host(t.host, t.port)} is not in"
            f" {t.known_hosts}; refusing to connect.\n"
            f"  It offered {key.get_name()} {fingerprint(key)}.\n"
            f"  Check that fingerprint on the backup host (ssh-keygen -lf"
            f" /etc/ssh/ssh_host_{_key_file_kind(key)}_key.pub), then trust it with:\n"
            f"    ssh-keyscan -p {t.port} -t {key.get_name()} {t.host} >> {t.known_hosts}"
        )


def _key_file_kind(key: paramiko.PKey) -> str:
    name = key.get_name()
    if "ed25519" in name:
        return "ed25519"
    if "ecdsa" in name:
        return "ecdsa"
    return "rsa"


def _prefetch_quietly(remote: paramiko.SFTPFile, limit: int | None = None) -> None:
    """paramiko's prefetch: a thread sends a download's read requests ahead. On a cut link that
    thread dies of EOFError, which Python prints on stderr as a traceback, while the read in
    our own thread fails anyway and becomes a clear target error. So the thread's connection
    errors are dropped (it wraps paramiko's private `_prefetch_thread`, kept since 1.x).
    With `limit`, no more than that is asked for, whatever size the server gives the file."""
    file: Any = remote  # a private method: no stubs for it
    send_requests = getattr(file, "_prefetch_thread", None)
    if send_requests is not None:  # else a later paramiko: its plain prefetch, traceback and all

        def sending(chunks: list[tuple[int, int]], max_concurrent_requests: int | None) -> None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                send_requests(chunks, max_concurrent_requests)

        file._prefetch_thread = sending
    size = remote.stat().st_size or 0
    remote.prefetch(size if limit is None else min(size, limit))


def _create_private(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPFile:
    """Create `path` (it must not exist) with mode 0600 in the SFTP open itself. sftp.open
    sends no mode, so the server creates 0666 less its umask, and a chmod after it comes too
    late: whoever opened the file in between keeps reading what is written. OpenSSH's
    sftp-server passes the open's permissions to open(2) (its umask can only narrow them)."""
    attributes = paramiko.SFTPAttributes()
    attributes.st_mode = 0o600
    flags = paramiko.sftp.SFTP_FLAG_WRITE | paramiko.sftp.SFTP_FLAG_CREATE
    flags |= paramiko.sftp.SFTP_FLAG_EXCL  # never an existing file, nor through a symlink
    # sftp.open takes no mode; `path` is absolute (we never chdir), as sftp.open would send it
    kind, message = sftp._request(  # type: ignore[attr-defined]
        paramiko.sftp.CMD_OPEN, path, flags, attributes
    )
    if kind != paramiko.sftp.CMD_HANDLE or message is None:
        raise paramiko.SFTPError("Expected handle")
    return paramiko.SFTPFile(sftp, message.get_binary(), "wb")


class SshTarget(Target):
    kind = "ssh"

    def __init__(
        self,
        name: str,
        host: str,
        user: str,
        port: int,
        path: str,
        identity_file: Path,
        known_hosts: Path,
        connect_timeout: float = 15.0,
    ) -> None:
        self.name = name
        self.host = host
        self.user = user
        self.port = port
        self.path = path
        self.identity_file = identity_file
        self.known_hosts = known_hosts
        self.connect_timeout = connect_timeout
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._dir_ready = False
        self._write_size: int | None = None

    @property
    def location(self) -> str:
        return f"{self.user}@{self.host}:{self.port}:{self.path}"

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        key = load_private_key(self.identity_file)  # a key we cannot use is not a refusal
        client = paramiko.SSHClient()
        self._load_known_hosts(client)
        client.set_missing_host_key_policy(_RefuseUnknownHost(self))
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                pkey=key,
                look_for_keys=False,
                allow_agent=False,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                transport_factory=_transport,
            )
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise self._changed_key_error(exc) from None
        except paramiko.AuthenticationException:
            client.close()
            raise KeyRefusedError(
                f"{self.name}: {self.user}@{self.host} refused the key {self.identity_file};"
                f" add {self.identity_file}.pub to ~{self.user}/.ssh/authorized_keys there"
            ) from None
        except CONNECTION_ERRORS as exc:  # TimeoutError is an OSError
            client.close()
            error = TargetUnreachable if _link_failed(exc) else TargetError
            raise error(
                f"{self.name}: cannot connect to {self.host}:{self.port}: {_reason(exc)}"
            ) from None
        self._client = client
        self._sftp = client.open_sftp()
        self._write_size = None
        return self._sftp

    def _load_known_hosts(self, client: paramiko.SSHClient) -> None:
        try:
            client.load_host_keys(str(self.known_hosts))
        except FileNotFoundError:
            pass  # every host is then unknown, and refused with the command to trust it
        except (OSError, paramiko.SSHException) as exc:  # unreadable, or a malformed line
            raise TargetError(
                f"{self.name}: cannot read known_hosts {self.known_hosts}: {_reason(exc)}"
            ) from None

    def _changed_key_error(self, exc: paramiko.BadHostKeyException) -> HostKeyError:
        host = known_hosts_host(self.host, self.port)
        return HostKeyError(
            f"{self.name}: the host key of {host} CHANGED; refusing to connect.\n"
            f"  {self.known_hosts} has {exc.expected_key.get_name()}"
            f" {fingerprint(exc.expected_key)}, the host offered {exc.key.get_name()}"
            f" {fingerprint(exc.key)}.\n"
            f"  This can be an attack. If the host was really reinstalled, check the new"
            f" fingerprint on it, then:\n"
            f"    ssh-keygen -R '{host}' -f {self.known_hosts}\n"
            f"    ssh-keyscan -p {self.port} -t {exc.key.get_name()} {self.host}"
            f" >> {self.known_hosts}"
        )

    def close(self) -> None:
        """Never fails: closing sends a last message, which a cut connection refuses with
        EOFError while paramiko's reader thread has not yet seen the cut."""
        for part in (self._sftp, self._client):
            if part is not None:
                with contextlib.suppress(*CONNECTION_ERRORS):
                    part.close()
        self._sftp = None
        self._client = None

    def _alive(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def connect(self) -> None:
        """Open the connection now, so a run reports a down host before any upload."""
        self._connect()

    # -- helpers ----------------------------------------------------------------------------

    def _remote(self, name: str) -> str:
        return posixpath.join(self.path, name)

    def _fail(self, action: str, name: str, exc: Exception, detail: str = "") -> TargetError:
        """The error for a failed operation; TargetUnreachable when the link failed (and the
        `detail` found nothing else to blame, such as a full disk)."""
        link_failed = _link_failed(exc) or not self._alive()  # paramiko: "Socket is closed"
        error = TargetUnreachable if link_failed and not detail else TargetError
        return error(f"{self.name}: cannot {action} {name} on {self.host}: {_reason(exc)}{detail}")

    def _ensure_dir(self, sftp: paramiko.SFTPClient) -> None:
        if self._dir_ready:
            return
        current = "/"
        for part in [p for p in self.path.split("/") if p]:
            current = posixpath.join(current, part)
            try:
                sftp.stat(current)
            except FileNotFoundError:
                sftp.mkdir(current, mode=0o700)
                sftp.chmod(current, 0o700)  # the server's umask must not widen it
        self._dir_ready = True

    # -- checks for setup and doctor -------------------------------------------------------

    def ensure_directory(self) -> None:
        """Create the configured directory (and parents) 0700 if missing."""
        sftp = self._connect()
        try:
            self._ensure_dir(sftp)
        except CONNECTION_ERRORS as exc:
            raise self._fail("create", self.path, exc) from None

    def directory_exists(self) -> bool:
        sftp = self._connect()
        try:
            return stat_module.S_ISDIR(sftp.stat(self.path).st_mode or 0)
        except FileNotFoundError:
            return False
        except CONNECTION_ERRORS as exc:
            raise self._fail("stat", self.path, exc) from None

    def check_writable(self) -> None:
        """Write and remove a small hidden probe file; TargetError if the server refuses."""
        sftp = self._connect()
        probe = self._remote(temp_name("k3s-backup-write-probe"))
        try:
            with sftp.open(probe, "wb") as remote:
                remote.write(b"k3s-backup write probe\n")
            sftp.remove(probe)
        except CONNECTION_ERRORS as exc:
            self._discard(probe)
            user, path = shlex.quote(self.user), shlex.quote(self.path)
            raise TargetError(
                f"{self.path} on {self.host} is not writable by {self.user} ({_reason(exc)}):"
                f" on the backup host, `chown {user} {path} && chmod 700 {path}`"
            ) from None

    def free_space(self) -> int | None:
        """Bytes available to us in the directory (OpenSSH's statvfs extension), or None when
        the server does not offer it."""
        sftp = self._connect()
        try:
            _kind, message = sftp._request(  # type: ignore[attr-defined]  # no public call
                paramiko.sftp.CMD_EXTENDED, STATVFS_EXTENSION, self.path
            )
        except CONNECTION_ERRORS:
            return None
        if message is None:
            return None
        fields = struct.unpack(">11Q", message.get_remainder()[: 11 * 8].ljust(88, b"\0"))
        fragment_size, available_blocks = fields[1], fields[4]
        return int(fragment_size * available_blocks)

    # -- the interface ----------------------------------------------------------------------

    def list(self) -> list[StoredObject]:
        sftp = self._connect()
        try:
            entries = sftp.listdir_attr(self.path)
        except FileNotFoundError:
            return []
        except CONNECTION_ERRORS as exc:
            raise self._fail("list", self.path, exc) from None
        return [
            StoredObject(entry.filename, entry.st_size or 0)
            for entry in entries
            if entry.st_mode is not None and stat_module.S_ISREG(entry.st_mode)
        ]

    def put(self, name: str, source: Readable, sha256: str | None = None) -> Verified:
        sftp = self._connect()
        temp = self._remote(temp_name(name))
        outgoing = Outgoing(source, sha256)
        try:
            self._ensure_dir(sftp)
            with _create_private(sftp, temp) as remote:
                sftp.chmod(temp, 0o600)  # a server that ignored the open's mode: still 0600
                remote.set_pipelined(True)
                if self._write_size is None:
                    self._write_size = _write_size(sftp)
                # per file: paramiko splits writes into requests of this size
                remote.MAX_REQUEST_SIZE = self._write_size
                while chunk := outgoing.read(CHUNK_SIZE):
                    remote.write(chunk)
                remote.flush()
                _wait_for_writes(sftp, remote)
            # A small file (manifest, bundle) is read back over SFTP: one round trip, where a
            # remote sha256sum costs a new SSH session (~0.1 s each on loopback).
            if outgoing.size <= READ_BACK_LIMIT:
                stored = self._read_back_sha256(temp)
            else:
                stored = self._remote_sha256(temp)
            if stored != outgoing.expected():
                raise TargetError(
                    f"{self.name}: copy of {name} does not verify on {self.host}"
                    f" (SHA-256 {stored} stored, {outgoing.expected()} expected)"
                )
            sftp.posix_rename(temp, self._remote(name))
        except CONNECTION_ERRORS as exc:
            full = self._full_disk()  # before the temporary's space is given back
            self._discard(temp)
            raise self._fail("upload", name, exc, full) from None
        except BaseException:  # not verified, or the source failed: no temporary left either
            self._discard(temp)
            raise
        return outgoing.verified()

    def _full_disk(self) -> str:
        """ "; the disk there is full (N bytes free)" when it is, to explain a failed write."""
        try:
            free = self.free_space()
        except TargetError:  # free_space turns connection errors into None itself
            return ""
        if free is None or free >= NEARLY_FULL:
            return ""
        return f"; the disk there is full ({free} bytes free in {self.path})"

    def _discard(self, temp: str) -> None:
        """Best effort: a dead connection leaves the temporary, which never has a final name."""
        try:
            if self._sftp is not None:
                self._sftp.remove(temp)
        except CONNECTION_ERRORS:
            pass

    def get(self, name: str, dest: Writable, limit: int) -> None:
        sftp = self._connect()
        try:
            with sftp.open(self._remote(name), "rb") as remote:
                _prefetch_quietly(remote, limit + 1)
                copy_capped(remote, dest, limit, f"{self.name}: {name}", "the most it may hold")
        except CONNECTION_ERRORS as exc:
            raise self._fail("download", name, exc) from None

    def stat(self, name: str) -> StoredObject | None:
        sftp = self._connect()
        try:
            attrs = sftp.stat(self._remote(name))
        except FileNotFoundError:
            return None
        except CONNECTION_ERRORS as exc:
            raise self._fail("stat", name, exc) from None
        return StoredObject(name, attrs.st_size or 0)

    def delete(self, name: str) -> None:
        sftp = self._connect()
        try:
            sftp.remove(self._remote(name))
        except FileNotFoundError:
            pass
        except CONNECTION_ERRORS as exc:
            raise self._fail("delete", name, exc) from None

    def sha256(self, name: str) -> str:
        self._connect()
        return self._remote_sha256(self._remote(name))

    def _remote_sha256(self, path: str) -> str:
        """Hash on the backup host with sha256sum; read the file back if it has none."""
        assert self._client is not None
        command = f"sha256sum -- {shlex.quote(path)}"
        try:
            _stdin, stdout, _stderr = self._client.exec_command(
                command, timeout=max(self.connect_timeout, 60.0) * 20
            )
            output = stdout.read().decode(errors="replace")
            status = stdout.channel.recv_exit_status()
        except CONNECTION_ERRORS as exc:
            raise self._fail("hash", path, exc) from None
        digest = output.split(" ", 1)[0].strip()
        if status == 0 and len(digest) == 64:
            return digest
        if status == 127:  # no sha256sum there: hash what the server gives back
            return self._read_back_sha256(path)
        raise TargetError(f"{self.name}: sha256sum of {path} failed on {self.host} ({status})")

    def _read_back_sha256(self, path: str) -> str:
        assert self._sftp is not None
        try:
            with self._sftp.open(path, "rb") as remote:
                _prefetch_quietly(remote)
                return sha256_stream(remote)
        except CONNECTION_ERRORS as exc:
            raise self._fail("read back", path, exc) from None
