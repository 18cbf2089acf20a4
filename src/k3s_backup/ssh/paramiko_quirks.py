"""Where we reach past paramiko's public API, each with why; one place to look when paramiko
changes. Every function here touches a private attribute or sends a raw SFTP request."""

from __future__ import annotations

import contextlib
import struct
import threading
from dataclasses import dataclass
from typing import Any

import paramiko

from k3s_backup.ssh.errors import CONNECTION_ERRORS

STATVFS_EXTENSION = "statvfs@openssh.com"
LIMITS_EXTENSION = "limits@openssh.com"
# SFTP read and write requests: paramiko's 32 KiB costs a Python round of packing per 32 KiB;
# OpenSSH's sftp-server (8.6+) announces what it takes (255 KiB each way): 256 KiB requests
# upload ~2x faster, and download 69 -> 117 MiB/s on loopback. Servers that do not announce a
# limit get the 32 KiB every SFTP server accepts.
DEFAULT_REQUEST_SIZE = 32768
MAX_REQUEST_SIZE = 256 * 1024


@dataclass(frozen=True)
class RequestSizes:
    """The largest SFTP requests to send this server, each way."""

    read: int = DEFAULT_REQUEST_SIZE
    write: int = DEFAULT_REQUEST_SIZE


def gcm_first_transport(sock: Any, /, **options: Any) -> paramiko.Transport:
    """AES-GCM first: paramiko's default AES-CTR + HMAC-SHA-256 hashes every byte a second time
    in Python's thread; GCM authenticates while encrypting (~20 % faster uploads here). Every
    cipher paramiko offers stays acceptable for servers without GCM (OpenSSH has it since 6.2)."""
    transport = paramiko.Transport(sock, **options)
    security = transport.get_security_options()
    security.ciphers = sorted(security.ciphers, key=lambda name: "-gcm@" not in name)
    return transport


def request_sizes(sftp: paramiko.SFTPClient) -> RequestSizes:
    """The largest SFTP read and write requests the server accepts, up to MAX_REQUEST_SIZE."""
    try:
        _kind, message = sftp._request(  # type: ignore[attr-defined]  # no public call
            paramiko.sftp.CMD_EXTENDED, LIMITS_EXTENSION
        )
    except CONNECTION_ERRORS:
        return RequestSizes()  # no such extension: the size every server takes
    if message is None:
        return RequestSizes()
    _packet, read, write, _handles = struct.unpack(
        ">4Q", message.get_remainder()[:32].ljust(32, b"\0")
    )
    return RequestSizes(_capped(read), _capped(write))


def _capped(announced: int) -> int:
    """0 is "no limit announced": the default then, not unbounded requests."""
    return min(int(announced), MAX_REQUEST_SIZE) if announced else DEFAULT_REQUEST_SIZE


def free_bytes(sftp: paramiko.SFTPClient, path: str) -> int | None:
    """Bytes available to us at `path` (OpenSSH's statvfs extension), or None when the server
    does not offer it."""
    try:
        _kind, message = sftp._request(  # type: ignore[attr-defined]  # no public call
            paramiko.sftp.CMD_EXTENDED, STATVFS_EXTENSION, path
        )
    except CONNECTION_ERRORS:
        return None
    if message is None:
        return None
    fields = struct.unpack(">11Q", message.get_remainder()[: 11 * 8].ljust(88, b"\0"))
    fragment_size, available_blocks = fields[1], fields[4]
    return int(fragment_size * available_blocks)


def wait_for_writes(sftp: paramiko.SFTPClient, remote: paramiko.SFTPFile) -> None:
    """Read the status of every pipelined write still unanswered, raising on the first error.

    paramiko files pipelined writes under no file object and drops their replies on close, so
    a server's "write failed" (a full disk) would go unseen until the checksum differs."""
    pending = remote._reqs  # type: ignore[attr-defined]  # no public way to wait for them
    while pending:
        sftp._read_response(pending.popleft())  # type: ignore[attr-defined]


def prefetch_quietly(remote: paramiko.SFTPFile, limit: int | None = None) -> None:
    """paramiko's prefetch: a thread sends a download's read requests ahead. On a cut link that
    thread dies of EOFError, which Python prints on stderr as a traceback, while the read in
    our own thread fails anyway and becomes a clear target error. So the thread's connection
    errors are dropped (it wraps paramiko's private `_prefetch_thread`, kept since 1.x).
    With `limit`, no more than that is asked for, whatever size the server gives the file.
    Requests are of the file's MAX_REQUEST_SIZE, all sent at once and not capped: what is in
    memory is bounded by the SSH channel's window (paramiko's 2 MiB, given back only as the
    reader takes answers), and paramiko's cap (`max_concurrent_requests`) made a 512 MiB
    download 2-3x slower for the same peak RSS (measured: docs/benchmarks.md, Restore).

    paramiko (5.1) also marks the prefetch done whenever every request sent so far is answered,
    even while its thread is still sending: when the reader catches up with a starved sender
    (a loaded machine), every later read becomes a synchronous round trip that parks all the
    outstanding answers in memory (a 1.1 GiB restore: 636 MiB RSS and 8x the time, measured).
    So it is done only once every request has its answer (or the sender stopped early)."""
    file: Any = remote  # private methods: no stubs for them
    send_requests = getattr(file, "_prefetch_thread", None)
    answered = getattr(file, "_async_response", None)
    if send_requests is not None and answered is not None:  # else a later paramiko's own
        sent = threading.Event()
        asked: list[int] = []  # how many requests the sender has to send
        answers = [0]

        def settle() -> None:  # under paramiko's lock, as its own bookkeeping is
            with file._prefetch_lock:
                every = bool(asked) and answers[0] >= asked[0]
                file._prefetch_done = every or (sent.is_set() and not file._prefetch_extents)

        def sending(chunks: list[tuple[int, int]], max_concurrent_requests: int | None) -> None:
            asked.append(len(chunks))  # before any request: every answer comes after it
            try:
                with contextlib.suppress(*CONNECTION_ERRORS):
                    send_requests(chunks, max_concurrent_requests)
            finally:
                sent.set()
                settle()

        def answer(kind: int, message: paramiko.Message, number: int) -> None:
            answered(kind, message, number)
            answers[0] += 1  # only the reading thread answers
            settle()

        file._prefetch_thread = sending
        file._async_response = answer
    size = remote.stat().st_size or 0
    remote.prefetch(size if limit is None else min(size, limit))


def create_private(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPFile:
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
