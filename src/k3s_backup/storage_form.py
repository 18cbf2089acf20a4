"""How a copy is stored on a target: plain, zstd or zip compressed, optionally age-encrypted.

Every form can be undone by hand with standard tools (`zstd -d`, `unzip`, `age -d`), and every
step streams: encode and decode go file to file with bounded memory, whatever the snapshot size.
Encryption uses recipients' public keys only, so the node never holds the private key.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Literal, cast

import pyrage
import zstandard

from k3s_backup.errors import BackupError, ConfigError
from k3s_backup.streams import CHUNK_SIZE, HashingWriter, copy_stream

Compression = Literal["none", "zstd", "zip"]
SUFFIX = {"none": "", "zstd": ".zst", "zip": ".zip"}
AGE_SUFFIX = ".age"


class DecodeError(BackupError):
    """A stored copy could not be decrypted or decompressed."""


@dataclass(frozen=True)
class StoredForm:
    compression: Compression = "none"
    zstd_level: int = 3
    recipients: tuple[str, ...] = ()

    @property
    def encryption(self) -> str:
        return "age" if self.recipients else "none"

    def effective_compression(self, source_suffix: str) -> Compression:
        """K3s `.zip` snapshots are compressed already: they are stored as they are."""
        return "none" if source_suffix == ".zip" else self.compression

    def suffix(self, source_suffix: str) -> str:
        compression = SUFFIX[self.effective_compression(source_suffix)]
        return compression + (AGE_SUFFIX if self.recipients else "")


def parse_recipients(
    lines: tuple[str, ...],
) -> list[pyrage.x25519.Recipient | pyrage.ssh.Recipient]:
    parsed: list[pyrage.x25519.Recipient | pyrage.ssh.Recipient] = []
    for line in lines:
        try:
            if line.startswith("age1"):
                parsed.append(pyrage.x25519.Recipient.from_str(line))
            else:
                parsed.append(pyrage.ssh.Recipient.from_str(line))
        except (pyrage.RecipientError, ValueError) as exc:
            raise ConfigError(f"not an age or SSH public key: {line[:40]!r} ({exc})") from None
    return parsed


def read_identities(path: Path) -> list[pyrage.x25519.Identity]:
    """The AGE-SECRET-KEY lines of an age identity file (as written by `age-keygen`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DecodeError(f"cannot read the age identity {path}: {exc.strerror}") from None
    keys = [line.strip() for line in lines if line.strip().startswith("AGE-SECRET-KEY-")]
    if not keys:
        raise DecodeError(f"{path} holds no AGE-SECRET-KEY line: not an age identity file")
    try:
        return [pyrage.x25519.Identity.from_str(key) for key in keys]
    except (pyrage.IdentityError, ValueError) as exc:
        raise DecodeError(f"{path}: invalid age identity: {exc}") from None


def encrypt_bytes(body: bytes, recipients: tuple[str, ...]) -> bytes:
    """Small sidecars (the restore bundle) encrypted to the same recipients as the copy."""
    encrypted: bytes = pyrage.encrypt(body, parse_recipients(recipients))
    return encrypted


def _private_file(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


@dataclass(frozen=True)
class Encoded:
    path: Path
    sha256: str | None  # of the stored form, when hashed while writing it; None for `plain`


def _compress(
    plain: Path, compression: Compression, level: int, inner: str, out: Path
) -> str | None:
    """Compress `plain` into `out`; the SHA-256 of `out` when it could be hashed in passing."""
    with plain.open("rb") as source, _private_file(out) as dest:
        if compression == "zstd":
            hashing = HashingWriter(dest)
            # Single-threaded: threads=-1 took ~55 MiB more RSS (a job buffer per worker) and
            # was no faster on a 2-core node at level 3, where SHA-256 and SSH share the CPU.
            zstandard.ZstdCompressor(level=level).copy_stream(
                source, cast(IO[bytes], hashing), read_size=CHUNK_SIZE, write_size=CHUNK_SIZE
            )
            return hashing.digest.hexdigest()
        # one entry named like the snapshot, as K3s's own .zip snapshots are
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            info = zipfile.ZipInfo(inner)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                copy_stream(source, member)
        return None


def encode(plain: Path, form: StoredForm, source_suffix: str, inner: str, workdir: Path) -> Path:
    """The stored form of `plain` as a private file in `workdir` (or `plain` itself)."""
    return encode_hashed(plain, form, source_suffix, inner, workdir).path


def encode_hashed(
    plain: Path, form: StoredForm, source_suffix: str, inner: str, workdir: Path
) -> Encoded:
    """`encode`, with the stored form's SHA-256 computed while writing it where possible."""
    current, digest = plain, None
    compression = form.effective_compression(source_suffix)
    if compression != "none":
        compressed = workdir / ("compressed" + SUFFIX[compression])
        digest = _compress(current, compression, form.zstd_level, inner, compressed)
        current = compressed
    if form.recipients:
        encrypted = workdir / "encrypted.age"
        with current.open("rb") as source, _private_file(encrypted) as dest:
            hashing = HashingWriter(dest)
            pyrage.encrypt_io(source, hashing, parse_recipients(form.recipients))
        current, digest = encrypted, hashing.digest.hexdigest()
    return Encoded(current, digest)


def _decompress(stored: Path, compression: str, out: Path) -> None:
    try:
        if compression == "zstd":
            with stored.open("rb") as source, _private_file(out) as dest:
                zstandard.ZstdDecompressor().copy_stream(source, dest)
        elif compression == "zip":
            with zipfile.ZipFile(stored) as archive:
                members = archive.infolist()
                if len(members) != 1:
                    raise DecodeError(f"zip copy must hold one entry, found {len(members)}")
                with archive.open(members[0]) as source, _private_file(out) as dest:
                    copy_stream(source, dest)
        else:
            raise DecodeError(f"unknown compression {compression!r} in the manifest")
    except (zstandard.ZstdError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DecodeError(f"cannot decompress ({compression}): {exc}") from None


@contextmanager
def _decrypting(identities: list[pyrage.x25519.Identity]) -> Iterator[None]:
    """One clear message for a missing or wrong private key, whatever is being decrypted."""
    if not identities:
        raise DecodeError("it is age-encrypted: pass --identity FILE (the private key)")
    try:
        yield
    except pyrage.DecryptError as exc:
        raise DecodeError(
            f"cannot decrypt it with the given identity ({exc}): is it the private key of one"
            " of the recipients this target encrypts to?"
        ) from None


def decrypt_bytes(body: bytes, identities: list[pyrage.x25519.Identity]) -> bytes:
    """Small sidecars (the restore bundle), the counterpart of `encrypt_bytes`."""
    with _decrypting(identities):
        plain: bytes = pyrage.decrypt(body, identities)
    return plain


def decode(
    stored: Path,
    compression: str,
    encryption: str,
    identities: list[pyrage.x25519.Identity],
    workdir: Path,
) -> Path:
    """The plain snapshot from its stored form, as a private file in `workdir`."""
    current = stored
    if encryption == "age":
        decrypted = workdir / "decrypted"
        with (
            _decrypting(identities),
            current.open("rb") as source,
            _private_file(decrypted) as dest,
        ):
            pyrage.decrypt_io(source, dest, identities)
        current = decrypted
    if compression != "none":
        plain = workdir / "plain"
        _decompress(current, compression, plain)
        current = plain
    return current
