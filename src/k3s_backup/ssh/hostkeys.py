"""Host keys: fingerprints, known_hosts entries, the key a server offers, and the one policy
for keys we do not know (refused, with the command to check and trust it) or that changed
(refused: this can be an attack). Nothing here ever trusts a key without the operator."""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import socket
from collections.abc import Sequence
from pathlib import Path

import paramiko

from k3s_backup.errors import HostKeyError, TargetError
from k3s_backup.ssh.errors import CONNECTION_ERRORS, reason


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:<base64 without padding>."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def shown(key: paramiko.PKey) -> str:
    """`ssh-ed25519 SHA256:...`: the key's type and fingerprint, as ssh-keygen -l shows them."""
    return f"{key.get_name()} {fingerprint(key)}"


def known_hosts_host(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def known_hosts_line(host: str, port: int, key: paramiko.PKey) -> str:
    return f"{known_hosts_host(host, port)} {key.get_name()} {key.get_base64()}"


def host_key_file(key: paramiko.PKey) -> str:
    """Where OpenSSH keeps the public half of this kind of host key, to check a fingerprint."""
    name = key.get_name()
    kind = "ed25519" if "ed25519" in name else "ecdsa" if "ecdsa" in name else "rsa"
    return f"/etc/ssh/ssh_host_{kind}_key.pub"


def fetch_host_key(
    host: str, port: int, timeout: float, key_types: list[str] | None = None
) -> paramiko.PKey:
    """The key the server offers, before any authentication (what `ssh-keyscan` shows).
    `key_types` limits the algorithms offered, to compare with a known_hosts entry."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise TargetError(f"cannot connect to {host}:{port}: {reason(exc)}") from None
    transport = paramiko.Transport(sock)
    try:
        if key_types:
            transport.get_security_options().key_types = key_types
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except CONNECTION_ERRORS as exc:
        raise TargetError(
            f"{host}:{port} did not complete an SSH handshake: {reason(exc)}"
        ) from None
    finally:
        transport.close()


def known_key(known_hosts: Path, host: str, port: int) -> list[paramiko.PKey]:
    """The keys known_hosts holds for host:port (hashed entries included)."""
    keys = paramiko.HostKeys()
    try:
        keys.load(str(known_hosts))
    except FileNotFoundError:
        return []
    entry = keys.lookup(known_hosts_host(host, port))
    return list(entry.values()) if entry else []


def check_host_key(
    host: str, port: int, known_hosts: Path, timeout: float
) -> tuple[paramiko.PKey, bool]:
    """The key host:port offers, and whether known_hosts already holds it (False: not known
    yet, for the operator to check). HostKeyChanged when known_hosts holds other keys for it;
    TargetError when no handshake completes."""
    known = known_key(known_hosts, host, port)
    offered = fetch_host_key(host, port, timeout, [k.get_name() for k in known] or None)
    if not known:
        return offered, False
    if not any(k == offered for k in known):
        raise HostKeyChanged(host, port, known_hosts, known, offered)
    return offered, True


def trust_host_key(known_hosts: Path, host: str, port: int, key: paramiko.PKey) -> None:
    """Append the host's key line to known_hosts (created 0600, its dir 0700)."""
    known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(known_hosts, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        if out.tell() > 0 and not known_hosts.read_bytes().endswith(b"\n"):
            out.write("\n")
        out.write(known_hosts_line(host, port, key) + "\n")


def _keyscan(host: str, port: int, key: paramiko.PKey, known_hosts: Path) -> str:
    return f"ssh-keyscan -p {port} -t {key.get_name()} {host} >> {shlex.quote(str(known_hosts))}"


class HostKeyChanged(HostKeyError):
    """The host offers another key than known_hosts holds for it: this can be an attack.
    `problem` and `fix` apart for doctor's columns; the message is both (prefixed by `name`)."""

    def __init__(
        self,
        host: str,
        port: int,
        known_hosts: Path,
        known: Sequence[paramiko.PKey],
        offered: paramiko.PKey,
        name: str | None = None,
    ) -> None:
        where = known_hosts_host(host, port)
        self.problem = (
            f"the host key of {where} CHANGED: {known_hosts} has"
            f" {', '.join(shown(k) for k in known)}, the host offers {shown(offered)}; this can"
            " be an attack: refusing to connect"
        )
        self.fix = (
            "if the host was really reinstalled, check the new fingerprint on it (ssh-keygen -lf"
            f" {host_key_file(offered)}), then: ssh-keygen -R {shlex.quote(where)} -f"
            f" {shlex.quote(str(known_hosts))} && {_keyscan(host, port, offered, known_hosts)}"
        )
        prefix = f"{name}: " if name else ""
        super().__init__(f"{prefix}{self.problem}.\n  {self.fix}")


class RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Refuse a key known_hosts lacks, telling the operator how to check and trust it."""

    def __init__(self, name: str, host: str, port: int, known_hosts: Path) -> None:
        self.name, self.host, self.port, self.known_hosts = name, host, port, known_hosts

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise HostKeyError(
            f"{self.name}: the host key of {known_hosts_host(self.host, self.port)} is not in"
            f" {self.known_hosts}; refusing to connect.\n"
            f"  It offered {shown(key)}.\n"
            f"  Check that fingerprint on that host (ssh-keygen -lf {host_key_file(key)}),"
            " then trust it with:\n"
            f"    {_keyscan(self.host, self.port, key, self.known_hosts)}"
        )
