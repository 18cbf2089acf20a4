"""The node's SSH key for the backup host: generated with `cryptography` (ed25519, OpenSSH
format, 0600) and its authorized_keys lines. Host keys are in hostkeys.py."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from k3s_backup.ssh.hostkeys import fingerprint
from k3s_backup.ssh.keyfile import KeyFileError, load_private_key

# What `k3s-backup` does over SSH: the SFTP subsystem and one `sha256sum -- <path>` exec. So a
# forced command (command="internal-sftp") would break verification. `restrict` turns off every
# forwarding, agent, X11, PTY and ~/.ssh/rc while still allowing those two; `from=` limits where
# the key is accepted from.
RESTRICTIONS = "restrict"


def key_comment() -> str:
    return f"k3s-backup@{socket.gethostname()}"


def generate_key(path: Path, comment: str) -> str:
    """Write a new ed25519 private key (0600, dir 0700) and its .pub; return the public line."""
    private = Ed25519PrivateKey.generate()
    private_bytes = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public_line = (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
        + f" {comment}"
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_bytes)
    os.chmod(path, 0o600)
    public_path(path).write_text(public_line + "\n", encoding="utf-8")
    os.chmod(public_path(path), 0o644)
    return public_line


def public_path(private: Path) -> Path:
    return private.with_name(private.name + ".pub")


def public_line(private: Path) -> str:
    """The key's authorized_keys line: its .pub if present, else derived from the private key."""
    try:
        return public_path(private).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        key = load_private_key(private)
        return f"{key.get_name()} {key.get_base64()} {key_comment()}"


def restricted_line(public: str, from_hosts: str | None) -> str:
    """`restrict,from="..."` + the key. Without a known address, a placeholder to fill in."""
    source = from_hosts or "ADDRESS-OF-THIS-NODE"
    return f'{RESTRICTIONS},from="{source}" {public}'


def key_fingerprint(private: Path) -> str:
    return fingerprint(load_private_key(private))


def usable_key(path: Path) -> str:
    """The fingerprint of the existing key at `path`, or KeyFileError: it cannot be loaded, or
    its permissions let others read it (the fix: chmod 600)."""
    found = key_fingerprint(path)
    problem = unsafe_permissions(path)
    if problem:
        fix = f"chmod 600 {path}"
        raise KeyFileError(f"{path}: {problem}", fix, f"{path}: {problem}; fix it with `{fix}`")
    return found


def unsafe_permissions(path: Path) -> str | None:
    """Why a private key's permissions are unsafe, or None."""
    info = path.stat()
    if info.st_mode & 0o077:
        return f"mode {info.st_mode & 0o777:04o} lets others read it"
    if info.st_uid != os.getuid():
        return f"owned by uid {info.st_uid}, not by the user running k3s-backup ({os.getuid()})"
    return None


def open_key_warnings(paths: Iterable[Path]) -> list[str]:
    """One warning per key file others may read or write: ssh itself refuses such a key
    ("UNPROTECTED PRIVATE KEY FILE"), and whoever reads it reaches the backup host as us."""
    warnings = []
    for path in dict.fromkeys(paths):  # a key shared by several targets: warned once
        try:
            info = path.stat()
        except OSError:
            continue  # missing or unreachable: loading it says so, with the fix
        mode = info.st_mode & 0o777
        if mode & 0o077 and stat.S_ISREG(info.st_mode):
            how = "readable" if mode & 0o044 else "writable"
            warnings.append(
                f"SSH key {path} is {how} by others (mode {mode:04o}), which ssh refuses:"
                f" `chmod 600 {path}`"
            )
    return warnings


def local_address_towards(host: str, port: int) -> str | None:
    """This node's address as the backup host sees it (no NAT assumed), for `from="..."`.
    A UDP connect only picks the route: no packet is sent."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[
            0
        ]
        with socket.socket(family, kind, proto) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0])
    except OSError:
        return None
