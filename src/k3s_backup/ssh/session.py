"""One SSH connection to one host, with our policy: the node's key only (no agent, no other
keys), host keys checked against known_hosts and never accepted silently, every paramiko
failure turned into one TargetError naming the host and, where known, the fix.

The session is what every SSH user in the program shares (the SSH target, the restore's peer
nodes, a service on the backup host); it knows nothing of what they store or run:

    session = SshSession.from_config(name, config)  # SshTargetConfig, NodeConfig...; no I/O
    session.connect()                 # now, so a down host or a refused key shows first
    sftp = session.sftp()             # paramiko.SFTPClient, connecting if need be
    result = session.exec(["sha256sum", "--", path])   # ExecResult(status, output)
    channel = session.open_channel(["k3s-backup", "serve"])  # paramiko.Channel, to stream
    session.failure("upload", name, exc)  # the TargetError to raise for a failed operation
    session.close()                   # never fails; the session is also a context manager

A command is an argument list, each argument quoted with shlex, never a string pasted into a
shell. What fails to connect raises KeyRefusedError (the host refused our key), HostKeyError
(unknown or changed host key), KeyFileError (our key file is unusable), TargetUnreachable (the
link failed: worth a later attempt) or TargetError (anything else).
"""

from __future__ import annotations

import contextlib
import shlex
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paramiko

from k3s_backup.errors import HostKeyError, TargetError, TargetUnreachable
from k3s_backup.plumbing.closable import Closable
from k3s_backup.ssh.errors import CONNECTION_ERRORS, KeyRefusedError, link_failed, reason
from k3s_backup.ssh.hostkeys import HostKeyChanged, RefuseUnknownHost
from k3s_backup.ssh.keyfile import load_private_key
from k3s_backup.ssh.paramiko_quirks import gcm_first_transport

COMMAND_TIMEOUT = 10 * 60.0  # seconds without a byte from a remote command
NO_EXIT_STATUS = -1  # paramiko's exit status of a channel that closed without sending one


def low_latency_transport(sock: Any, /, **options: Any) -> paramiko.Transport:
    """TCP_NODELAY before the handshake: paramiko leaves Nagle's algorithm on, so a small
    packet sent while another is unacknowledged (a window adjust, then the next request) waits
    for the peer's delayed ACK, ~40 ms. A request answered in 0.5 ms took 45 ms on loopback,
    every round trip of the service protocol among them; bulk uploads measured no different."""
    with contextlib.suppress(OSError):  # not a TCP socket: nothing to tune
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return gcm_first_transport(sock, **options)


class SshEndpoint(Protocol):
    """Where and as whom to connect: SshTargetConfig, NodeConfig, or any config alike."""

    @property
    def host(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def identity_file(self) -> Path: ...
    @property
    def known_hosts(self) -> Path: ...
    @property
    def connect_timeout(self) -> float: ...


@dataclass(frozen=True)
class ExecResult:
    status: int
    output: str  # stdout and stderr, merged


class SshSession(Closable):
    """Connects on first use (or `connect()`); reconnects on use after `close()`."""

    def __init__(
        self,
        name: str,
        host: str,
        user: str,
        port: int,
        identity_file: Path,
        known_hosts: Path,
        connect_timeout: float = 15.0,
    ) -> None:
        self.name = name  # what messages start with: the target's name, or user@host
        self.host = host
        self.user = user
        self.port = port
        self.identity_file = identity_file
        self.known_hosts = known_hosts
        self.connect_timeout = connect_timeout
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    @classmethod
    def from_config(cls, name: str, config: SshEndpoint) -> SshSession:
        return cls(
            name,
            config.host,
            config.user,
            config.port,
            config.identity_file,
            config.known_hosts,
            float(config.connect_timeout),
        )

    # -- connecting -------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect and authenticate now (a no-op when connected)."""
        self._connected()

    def _connected(self) -> paramiko.SSHClient:
        if self._client is not None:
            return self._client
        key = load_private_key(self.identity_file)  # a key we cannot use is not a refusal
        client = paramiko.SSHClient()
        try:
            self._load_known_hosts(client)
            client.set_missing_host_key_policy(
                RefuseUnknownHost(self.name, self.host, self.port, self.known_hosts)
            )
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
                transport_factory=low_latency_transport,
            )
        except BaseException as exc:
            client.close()
            raise self._connect_error(exc) from None
        self._client = client
        return client

    def _connect_error(self, exc: BaseException) -> BaseException:
        """The one error for each way connecting fails (anything unforeseen as it is)."""
        if isinstance(exc, HostKeyError | TargetError):
            return exc  # our own: the unknown host policy, known_hosts unreadable
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyChanged(
                self.host, self.port, self.known_hosts, [exc.expected_key], exc.key, self.name
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return KeyRefusedError(
                f"{self.name}: {self.user}@{self.host} refused the key {self.identity_file};"
                f" add {self.identity_file}.pub to ~{self.user}/.ssh/authorized_keys there"
            )
        if isinstance(exc, CONNECTION_ERRORS):  # TimeoutError is an OSError
            error = TargetUnreachable if link_failed(exc) else TargetError
            return error(f"{self.name}: cannot connect to {self.host}:{self.port}: {reason(exc)}")
        return exc

    def _load_known_hosts(self, client: paramiko.SSHClient) -> None:
        try:
            client.load_host_keys(str(self.known_hosts))
        except FileNotFoundError:
            pass  # every host is then unknown, and refused with the command to trust it
        except (OSError, paramiko.SSHException) as exc:  # unreadable, or a malformed line
            raise TargetError(
                f"{self.name}: cannot read known_hosts {self.known_hosts}: {reason(exc)}"
            ) from None

    def alive(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def close(self) -> None:
        """Never fails: closing sends a last message, which a cut connection refuses with
        EOFError while paramiko's reader thread has not yet seen the cut."""
        for part in (self._sftp, self._client):
            if part is not None:
                with contextlib.suppress(*CONNECTION_ERRORS):
                    part.close()
        self._sftp = None
        self._client = None

    # -- using it ---------------------------------------------------------------------------

    def sftp(self) -> paramiko.SFTPClient:
        """The session's SFTP channel, opened on first use."""
        if self._sftp is None:
            client = self._connected()
            try:
                self._sftp = client.open_sftp()
            except CONNECTION_ERRORS as exc:
                error = TargetUnreachable if link_failed(exc) else TargetError
                raise error(f"{self.name}: no SFTP on {self.host}: {reason(exc)}") from None
        return self._sftp

    def open_channel(
        self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT, combine_stderr: bool = True
    ) -> paramiko.Channel:
        """A channel running `argv` there, for the caller to read, write and close; a read or
        write waits at most `timeout` seconds. Raises paramiko's errors (CONNECTION_ERRORS)."""
        transport = self._connected().get_transport()
        if transport is None or not transport.is_active():
            raise paramiko.SSHException("the SSH connection is closed")
        channel = transport.open_session(timeout=self.connect_timeout)
        channel.settimeout(timeout)
        channel.set_combine_stderr(combine_stderr)  # one stream: no deadlock on a full stderr
        channel.exec_command(shlex.join(argv))
        return channel

    def exec(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> ExecResult:
        """Run `argv` there to its end. Its exit status is the caller's to judge; a link lost
        on the way is a TargetError (TargetUnreachable when the link failed) saying that
        whether it ran is unknown."""
        self._connected()  # a failure to connect says so, not "whether it ran is unknown"
        command = shlex.join(argv)
        try:
            with self.open_channel(argv, timeout) as channel:
                output = channel.makefile("rb").read().decode(errors="replace")
                status = channel.recv_exit_status()
        except CONNECTION_ERRORS as exc:
            error = TargetUnreachable if link_failed(exc) or not self.alive() else TargetError
            raise error(
                f"{self.name}: `{command}` on {self.host} failed: {reason(exc)}; whether it ran"
                " there is unknown"
            ) from None
        if status == NO_EXIT_STATUS:  # the channel closed without one: the link was lost
            raise TargetUnreachable(
                f"{self.name}: the SSH link was lost during `{command}`; whether it ran there"
                " is unknown"
            )
        return ExecResult(status, output)

    def failure(self, action: str, what: str, exc: BaseException, detail: str = "") -> TargetError:
        """The error for a failed operation: TargetUnreachable when the link failed (and
        `detail` found nothing else to blame, such as a full disk), else TargetError."""
        failed = link_failed(exc) or not self.alive()  # paramiko: "Socket is closed"
        error = TargetUnreachable if failed and not detail else TargetError
        return error(f"{self.name}: cannot {action} {what} on {self.host}: {reason(exc)}{detail}")
