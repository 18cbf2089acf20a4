"""The node's private SSH key, loaded once for every command (run, setup, doctor, restore), or
refused with what is wrong with that file and how to fix it.

paramiko's own errors name neither the file nor the fix (`TypeError: Key is password-protected`,
`ValueError: Unable to load PEM file ... MalformedFraming`), and given a key it cannot use,
`SSHClient.connect` reports that the server refused it. So the key is loaded here, before any
connection, and each way it can be unusable gets its own message.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import paramiko

from k3s_backup.errors import TargetError

MAX_KEY_SIZE = 64 * 1024  # an RSA 16384-bit key in PEM is under 13 KiB


class KeyFileError(TargetError):
    """`identity_file` cannot be used as a key; `problem` is what, `fix` how to mend it."""

    def __init__(self, problem: str, fix: str, message: str | None = None) -> None:
        super().__init__(message or f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix


def _new_key(path: Path) -> str:
    return f"`ssh-keygen -t ed25519 -N '' -f {path}`"


def _file_problem(path: Path) -> KeyFileError | None:
    """What keeps `path` from being read as a key file at all (before paramiko reads it)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return KeyFileError(f"SSH key {path} does not exist", f"create it with {_new_key(path)}")
    except OSError as exc:
        return KeyFileError(
            f"cannot reach SSH key {path}: {exc.strerror}",
            f"check the directories above it (`namei -l {path}`)",
        )
    if stat.S_ISDIR(info.st_mode):
        return KeyFileError(f"SSH key {path} is a directory, not a key file", _inside(path))
    if not stat.S_ISREG(info.st_mode):
        return KeyFileError(
            f"SSH key {path} is not a regular file",
            "set identity_file to a private key file (such as /root/.ssh/id_ed25519)",
        )
    if info.st_size > MAX_KEY_SIZE:
        return KeyFileError(
            f"SSH key {path} is {info.st_size} bytes, too large to be a private key",
            "set identity_file to the private key file (such as /root/.ssh/id_ed25519)",
        )
    if not os.access(path, os.R_OK):
        return KeyFileError(
            f"cannot read SSH key {path}: permission denied (owned by uid {info.st_uid}, mode"
            f" {info.st_mode & 0o777:04o})",
            f"run k3s-backup as that user, or give the key to this one (uid {os.getuid()}):"
            f" `chown {os.getuid()} {path} && chmod 600 {path}`",
        )
    return None


KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")  # ssh's own default names, its order


def _inside(directory: Path) -> str:
    """The fix for identity_file naming a directory (`/root/.ssh`, or a mkdir'ed key path)."""
    first = "set identity_file to the private key file inside it"
    try:
        entries = {entry.name for entry in directory.iterdir()}
    except OSError:
        entries = {"?"}  # unreadable: not known to be empty
    found = next((name for name in KEY_NAMES if (directory / name).is_file()), None)
    if found:
        return f"{first}: `k3s-backup setup --identity-file {directory / found}`"
    if not entries:
        return f"{first}, or let setup make the key here: `rmdir {directory} && k3s-backup setup`"
    new = directory / KEY_NAMES[0]
    return f"{first}, such as a new one setup makes: `k3s-backup setup --identity-file {new}`"


def _not_a_key(path: Path) -> KeyFileError:
    try:
        head = path.read_bytes()[:64]
    except OSError:
        head = b""
    if head.startswith((b"ssh-", b"ecdsa-", b"sk-")):
        return KeyFileError(
            f"SSH key {path} holds a public key, not the private one",
            f"set identity_file to the private key (the file without .pub), or make a new"
            f" pair with {_new_key(path.with_suffix(''))}",
        )
    return KeyFileError(
        f"SSH key {path} is not a private key (neither OpenSSH nor PEM format, or damaged)",
        f"set identity_file to your private key, or move this file aside and make a new key"
        f" with {_new_key(path)}",
    )


def load_private_key(path: Path) -> paramiko.PKey:
    """The key at `path`; KeyFileError naming the file and the fix if it cannot be used."""
    problem = _file_problem(path)
    if problem is not None:
        raise problem
    try:
        with warnings.catch_warnings():  # "DSA keys are deprecated": refused below anyway
            warnings.simplefilter("ignore")
            return paramiko.PKey.from_path(path)
    except TypeError:  # paramiko/cryptography: "password-protected" / "encrypted"
        raise KeyFileError(
            f"SSH key {path} is protected by a passphrase, which an unattended backup cannot type",
            f"remove the passphrase with `ssh-keygen -p -N '' -f {path}` (it stays 0600), or"
            " set identity_file to a key without one",
        ) from None
    except paramiko.pkey.UnknownKeyType:  # DSA, which OpenSSH dropped too
        raise KeyFileError(
            f"SSH key {path} is of a type k3s-backup cannot use (DSA, or another old type)",
            f"make an ed25519 key with {_new_key(path.with_name('id_ed25519'))}",
        ) from None
    except OSError as exc:
        raise KeyFileError(
            f"cannot read SSH key {path}: {exc.strerror or exc}",
            f"check the file (`ls -l {path}`)",
        ) from None
    except Exception:  # a damaged file: ValueError, UnsupportedAlgorithm, NotImplementedError...
        raise _not_a_key(path) from None
