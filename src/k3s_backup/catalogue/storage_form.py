"""How a copy is stored on a target: plain, zstd or zip compressed, optionally age-encrypted.

Every form can be undone by hand with standard tools (`zstd -d`, `unzip`, `age -d`), and every
step streams with bounded memory, whatever the snapshot size: encoding happens while the copy is
uploaded, decoding goes file to file.
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
from k3s_backup.formats.etcd_snapshot import ZIP_ERRORS
from k3s_backup.plumbing.streams import (
    CHUNK_SIZE,
    CappedWriter,
    HashingReader,
    Readable,
    RefusedInput,
    copy_capped,
    copy_stream,
    produced,
)

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


Identities = list[pyrage.x25519.Identity]  # age private keys, to decrypt with


def read_identities(path: Path) -> Identities:
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


class EncodeError(BackupError):
    """The snapshot could not be read or encoded while it was being shipped."""


class _Guarded:
    """Any failure to read or encode becomes an EncodeError naming the snapshot, so a target
    sees one kind of error from its source whatever the form. Wrapped around the snapshot and
    around the encoded stream: a read error of the snapshot keeps its own words even when the
    encoder (age) reported it in its own."""

    def __init__(self, source: Readable, snapshot: str, reads: _Guarded | None = None) -> None:
        self.source = source
        self.snapshot = snapshot
        self.reads = reads  # the guard of the snapshot this stream is encoded from
        self.failure: EncodeError | None = None

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self.source.read(size)
        except EncodeError:
            raise
        except (OSError, zstandard.ZstdError, pyrage.EncryptError, ValueError) as exc:
            if self.reads is not None and self.reads.failure is not None:
                raise self.reads.failure from exc
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            self.failure = EncodeError(f"cannot read or encode {self.snapshot}: {reason}")
            raise self.failure from exc


class _Checked:
    """The snapshot as it is read to be encoded, hashed on the way: at its end it must be the
    bytes that were checked (size and SHA-256), else the read raises EncodeError and the copy
    never gets its final name, rather than shipping other bytes under the old plain_sha256."""

    def __init__(self, source: Readable, size: int, sha256: str, snapshot: str) -> None:
        self.reader = HashingReader(source)
        self.size = size
        self.sha256 = sha256
        self.snapshot = snapshot

    def read(self, size: int = -1, /) -> bytes:
        chunk = self.reader.read(size)
        if not chunk:
            read, digest = self.reader.size, self.reader.hexdigest()
            if (read, digest) != (self.size, self.sha256):
                raise EncodeError(
                    f"{self.snapshot} changed since it was checked: {read} bytes with SHA-256"
                    f" {digest} read now, {self.size} bytes with SHA-256 {self.sha256} checked;"
                    " not shipping it"
                )
        return chunk


def _zip_into(plain: Readable, inner: str, dest: BinaryIO) -> None:
    """One entry named like the snapshot, as K3s's own .zip snapshots are. `dest` may be a
    pipe: zipfile then writes each entry's sizes after its data (standard, `unzip` reads it)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        info = zipfile.ZipInfo(inner)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        with archive.open(info, "w", force_zip64=True) as member:
            copy_stream(plain, member)


@contextmanager
def stored_stream(
    plain: Readable,
    plain_size: int,
    form: StoredForm,
    source_suffix: str,
    inner: str,
    plain_sha256: str | None = None,
) -> Iterator[Readable]:
    """The stored form of `plain`, encoded while it is read: no second copy of the snapshot is
    ever written to this node's disk (often the etcd disk itself), and compression overlaps
    the upload. zstd is pulled straight from its compressor; age and zip can only push into a
    writer, so they run in a thread behind a pipe (`streams.produced`). With `plain_sha256`,
    `plain` must hash to it (and be `plain_size` long), or the stream fails at its end."""
    compression = form.effective_compression(source_suffix)
    checked = plain if plain_sha256 is None else _Checked(plain, plain_size, plain_sha256, inner)
    snapshot = _Guarded(checked, inner)
    if compression == "zip" or form.recipients:

        def encode(dest: BinaryIO) -> None:
            _encode_into(snapshot, plain_size, form, compression, inner, dest)

        with produced(encode) as stream:
            yield _Guarded(stream, inner, reads=snapshot)
    elif compression == "zstd":
        stream = _zstd_reader(snapshot, plain_size, form.zstd_level)
        yield _Guarded(stream, inner, reads=snapshot)
    else:
        yield snapshot


def _zstd_reader(plain: Readable, plain_size: int, level: int) -> Readable:
    # Single-threaded: threads=-1 took ~55 MiB more RSS (a job buffer per worker) and was no
    # faster on a 2-core node at level 3, where SHA-256 and SSH share the CPU; pulling from
    # the compressor also beat a compressing thread behind a pipe (1.7 s vs 2.0 s per GiB).
    compressor = zstandard.ZstdCompressor(level=level)
    # it only ever calls read(): any Readable will do, whatever its stubs say
    source = cast(IO[bytes], plain)
    reader: Readable = compressor.stream_reader(source, size=plain_size, read_size=CHUNK_SIZE)
    return reader


def _encode_into(
    plain: Readable,
    plain_size: int,
    form: StoredForm,
    compression: Compression,
    inner: str,
    dest: BinaryIO,
) -> None:
    if compression == "zip":
        if not form.recipients:
            _zip_into(plain, inner, dest)
            return
        with produced(lambda zipped: _zip_into(plain, inner, zipped)) as zipped:
            pyrage.encrypt_io(zipped, dest, parse_recipients(form.recipients))
        return
    source = _zstd_reader(plain, plain_size, form.zstd_level) if compression == "zstd" else plain
    pyrage.encrypt_io(source, dest, parse_recipients(form.recipients))


PLAIN_LIMIT = "the plain size its manifest gives"


def _decompress(stored: Path, compression: str, out: Path, plain_size: int, what: str) -> None:
    """Never writes more than `plain_size` bytes: a bomb is refused one byte past it."""
    try:
        if compression == "zstd":
            with (
                stored.open("rb") as source,
                zstandard.ZstdDecompressor().stream_reader(
                    source, read_size=CHUNK_SIZE, read_across_frames=True
                ) as plain,
                _private_file(out) as dest,
            ):
                copy_capped(plain, dest, plain_size, what, PLAIN_LIMIT)
        elif compression == "zip":
            with zipfile.ZipFile(stored) as archive:
                members = archive.infolist()
                if len(members) != 1:
                    raise DecodeError(f"zip copy must hold one entry, found {len(members)}")
                with archive.open(members[0]) as entry, _private_file(out) as dest:
                    copy_capped(entry, dest, plain_size, what, PLAIN_LIMIT)
        else:
            raise DecodeError(f"unknown compression {compression!r} in the manifest")
    except (zstandard.ZstdError, *ZIP_ERRORS, EOFError, ValueError) as exc:  # zlib.error too
        raise DecodeError(f"cannot decompress ({compression}): {exc}") from None


@contextmanager
def _decrypting(identities: Identities) -> Iterator[None]:
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


def decrypt_bytes(body: bytes, identities: Identities) -> bytes:
    """Small sidecars (the restore bundle), the counterpart of `encrypt_bytes`."""
    with _decrypting(identities):
        plain: bytes = pyrage.decrypt(body, identities)
    return plain


def _decrypt(
    stored: Path,
    out: Path,
    identities: Identities,
    limit: tuple[int, str],
    what: str,
) -> None:
    with _decrypting(identities), stored.open("rb") as source, _private_file(out) as dest:
        capped = CappedWriter(dest, limit[0], what, limit[1])
        try:
            pyrage.decrypt_io(source, capped, identities)
        except RefusedInput:
            raise
        except Exception as exc:
            if capped.refused is not None:  # pyrage may wrap what our writer raised
                raise capped.refused from None
            if isinstance(exc, OSError):  # pyrage's streaming word for a damaged payload too
                raise DecodeError(f"cannot decrypt (age): damaged or truncated ({exc})") from None
            raise


def decode(
    stored: Path,
    compression: str,
    encryption: str,
    identities: Identities,
    workdir: Path,
    plain_size: int,
    what: str,
) -> Path:
    """The plain snapshot from its stored form, as a private file in `workdir`. Nothing
    decoded is ever larger than the manifest's `plain_size`: a decompression bomb (or a
    manifest that lies) is refused one byte past it, with RefusedInput naming `what`."""
    current = stored
    described = f"{what}, decoded,"
    if encryption == "age":
        decrypted = workdir / "decrypted"
        # age's plaintext is always shorter than its ciphertext: a compressed form inside it
        # is capped by the stored size, a plain one by the plain size
        limit = (
            (stored.stat().st_size, "its stored size")
            if compression != "none"
            else (plain_size, PLAIN_LIMIT)
        )
        _decrypt(current, decrypted, identities, limit, described)
        current = decrypted
    if compression != "none":
        plain = workdir / "plain"
        _decompress(current, compression, plain, plain_size, described)
        current = plain
    return current
