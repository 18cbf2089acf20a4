"""The cluster's recovery key: the one secret an operator keeps off the node, and what it proves.

Whoever controls a backup host or bucket controls what is stored there, so nothing read from it
is believed on its own word: every manifest carries an HMAC-SHA256 by a key derived from the
recovery key, over all of its fields (the copy's name and time, the cluster identity, the node,
both sizes and SHA-256s, the stored form and the restore bundle's SHA-256). A copy renamed, a
manifest forged or swapped, is refused. The restore bundle (it holds the server token) is
encrypted with age to an X25519 identity derived from the same key, so `age -d -i` with the
identity `k3s-backup recovery-key age-identity` prints decrypts it by hand.

Text form: `k3sb-` and 55 base32 characters in groups of four: 32 random bytes and a 2-byte
checksum, so a typo is caught when the key is entered, not when a restore fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import bech32
import pyrage

from k3s_backup.catalogue.manifest import Manifest
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ConfigError
from k3s_backup.plumbing.atomic import write_atomic

PREFIX = "k3sb-"
KEY_BYTES = 32
CHECK_BYTES = 2
MAX_KEY_FILE = 4096  # a key file is one line; anything bigger is not one
_MAC_CONTEXT = b"k3s-backup/manifest-mac/v1"
_AGE_CONTEXT = b"k3s-backup/bundle-age/v1"


class RecoveryKeyError(ConfigError):
    """The recovery key is missing, malformed or cannot be stored."""


class NotAuthentic(BackupError):
    """A copy's metadata does not authenticate: forged, altered, renamed or another cluster's."""


def generate() -> str:
    return encode(secrets.token_bytes(KEY_BYTES))


def _checksum(key: bytes) -> bytes:
    return hashlib.sha256(b"k3sb" + key).digest()[:CHECK_BYTES]


def encode(key: bytes) -> str:
    text = base64.b32encode(key + _checksum(key)).decode().rstrip("=")
    return PREFIX + "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def decode(text: str) -> bytes:
    """The key's 32 bytes from its text form; RecoveryKeyError naming what is wrong."""
    compact = "".join(text.split()).replace("-", "").upper()
    if not compact.startswith(PREFIX.rstrip("-").upper()):
        raise RecoveryKeyError(f"a recovery key starts with {PREFIX!r}")
    body = compact[len(PREFIX) - 1 :]
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError:
        raise RecoveryKeyError(
            "the recovery key has characters that are not base32 (A-Z, 2-7): check for a typo"
        ) from None
    key, check = raw[:KEY_BYTES], raw[KEY_BYTES:]
    if len(key) != KEY_BYTES or check != _checksum(key):
        raise RecoveryKeyError("the recovery key's checksum does not match: check for a typo")
    return key


def load(path: Path) -> bytes | None:
    """The key in `path` (one line), None if there is no such file."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecoveryKeyError(f"cannot read the recovery key {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise RecoveryKeyError(f"{path} is not a recovery key file (over {MAX_KEY_FILE} bytes)")
    try:
        return decode(data.decode())
    except (UnicodeDecodeError, RecoveryKeyError) as exc:
        raise RecoveryKeyError(f"{path}: not a valid recovery key: {exc}") from None


def save(path: Path, key: bytes) -> None:
    """Write the key 0600 (0700 directory); never over another key."""
    existing = load(path)
    if existing is not None and existing != key:
        raise RecoveryKeyError(
            f"{path} already holds another recovery key; move it aside first (copies made"
            " with it authenticate only with it)"
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, (encode(key) + "\n").encode())
    os.chmod(path, 0o600)


KEEP_SAFE = (
    "Keep it OFF this node (a password manager, paper): with the backup host's address it is"
    " all a new node needs to restore this cluster; every server of the cluster uses the same"
    " key (`k3s-backup recovery-key set FILE` or `setup --recovery-key FILE` there)."
)


def show_once(env: Environment, key: bytes, path: Path) -> None:
    env.stdout.write(f"Recovery key (saved in {path}, 0600):\n\n    {encode(key)}\n\n{KEEP_SAFE}\n")


def read_given(given: str, env: Environment) -> bytes:
    """The key from FILE, or typed/piped on stdin for `-`."""
    if given == "-":
        if env.stdin_is_tty:
            env.stderr.write("Recovery key: ")
            env.stderr.flush()
        return decode(env.stdin.readline(MAX_KEY_FILE))
    key = load(Path(given))
    if key is None:
        raise RecoveryKeyError(f"{given}: no such file")
    return key


def _derive(key: bytes, context: bytes) -> bytes:
    return hmac.new(key, context, hashlib.sha256).digest()


def _signed_bytes(manifest: Manifest) -> bytes:
    fields = asdict(manifest)
    fields.pop("mac", None)
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: Manifest, key: bytes) -> Manifest:
    mac = hmac.new(_derive(key, _MAC_CONTEXT), _signed_bytes(manifest), hashlib.sha256)
    return Manifest(**{**asdict(manifest), "mac": mac.hexdigest()})


def is_authentic(manifest: Manifest, key: bytes) -> bool:
    return isinstance(manifest.mac, str) and hmac.compare_digest(
        sign(manifest, key).mac, manifest.mac
    )


def age_identity(key: bytes) -> pyrage.x25519.Identity:
    """The age identity bundles are encrypted to: derived from the key, never stored."""
    words = bech32.convertbits(list(_derive(key, _AGE_CONTEXT)), 8, 5)
    assert words is not None  # 32 bytes always convert
    return pyrage.x25519.Identity.from_str(bech32.bech32_encode("age-secret-key-", words).upper())


def age_identity_text(key: bytes) -> str:
    return str(age_identity(key))


@dataclass(frozen=True)
class Trust:
    """What a command believes of a target's manifests: those authenticated by `key`, and with
    `allow_unauthenticated` (an explicit option) also those without a MAC."""

    key: bytes | None
    allow_unauthenticated: bool = False

    @classmethod
    def of(cls, key_file: Path, allow_unauthenticated: bool = False) -> Trust:
        return cls(load(key_file), allow_unauthenticated)

    def check(self, manifest: Manifest, listed: str, location: str, encrypting: bool) -> str:
        """NotAuthentic unless the manifest listed as `listed` at `location` is this cluster's
        own, unaltered; else what was checked, in words."""
        if manifest.name != listed:
            raise NotAuthentic(
                f"{location}: the manifest beside {listed} describes {manifest.name}: renamed or"
                " swapped on the target"
            )
        if encrypting and manifest.encryption != "age":
            raise NotAuthentic(
                f"{location}: {listed} says it is not encrypted, but this target encrypts every"
                " copy (age_recipients): planted, or a downgrade"
            )
        if not manifest.mac:
            if self.allow_unauthenticated:
                return "UNAUTHENTICATED (allowed by --allow-unauthenticated)"
            raise NotAuthentic(
                f"{location}: {listed} is not authenticated (its manifest has no MAC: made before"
                " k3s-backup authenticated copies, or planted there); use it only if you trust"
                f" {location}: --allow-unauthenticated"
            )
        if self.key is None:
            raise NotAuthentic(
                f"{location}: {listed} is authenticated with the cluster's recovery key, which"
                " this node does not have: put it in place with `k3s-backup recovery-key set"
                " FILE` (or `k3s-backup setup --recovery-key FILE`)"
            )
        if not is_authentic(manifest, self.key):
            raise NotAuthentic(
                f"{location}: {listed} does not authenticate with this cluster's recovery key:"
                f" forged or altered on {location}, or made with another key"
            )
        return "authenticated by the recovery key"
