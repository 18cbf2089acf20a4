"""A copy from a target to the plain file K3s will read, in one streaming pass: a thread
downloads the stored form (hashing it as it arrives) while this one decrypts (age), decompresses
(zstd), writes the plain file and checks it (its SHA-256 against the manifest, the etcd trailer
and bbolt pages) from the same bytes. Nothing is stored twice and nothing is read twice; memory
stays at a few 1 MiB buffers whatever the size.

Every check of the two-step fetch stays, in the same order of blame: when decoding or checking
fails, the rest of the copy is still downloaded and its stored SHA-256 compared first, so a
damaged copy is still called damaged ("does not verify"), not undecodable. The plain file gets
its name only once everything verified; a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

import pyrage
import zstandard

from k3s_backup.catalogue.manifest import Manifest
from k3s_backup.catalogue.storage_form import PLAIN_LIMIT, DecodeError, Identities
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import SnapshotError, TargetUnreachable
from k3s_backup.formats.etcd_snapshot import SnapshotCheck, check_stream
from k3s_backup.plumbing.progress import TransferBar
from k3s_backup.plumbing.streams import (
    CHUNK_SIZE,
    CappedWriter,
    HashingWriter,
    Readable,
    RefusedInput,
    over_limit,
    produced,
)
from k3s_backup.policy import naming
from k3s_backup.report import Reporter
from k3s_backup.targets.base import Target
from k3s_backup.targets.retry import on_target

ManifestOf = Callable[[Target], Manifest]  # the copy's manifest, authenticated and announced


@dataclass(frozen=True)
class Streamed:
    name: naming.SnapshotName  # the plain snapshot's name, as this node made it
    plain: Path
    check: SnapshotCheck
    manifest: Manifest  # authenticated (if it has a MAC) and verified against the bytes


def streams(name: naming.SnapshotName) -> bool:
    """Whether a copy of this name takes the one-pass route: zstd, age or plain forms of an
    etcd snapshot (a K3s `.zip` or a `zip` form needs a seekable file, and SQLite checks a
    file: those take the two-step one)."""
    return ".zip" not in name.suffix and not name.suffix.startswith(".db")


def fetch_streamed(
    config: Config,
    env: Environment,
    location: str,
    stored: naming.SnapshotName,
    manifest_of: ManifestOf,
    work: Path,
    identities: Identities,
) -> Streamed:
    """Download `stored` from the target `location` into a plain, verified file in `work`,
    tried again from nothing after a link failure as the target's `retries` say."""
    reporter = Reporter(env, None)

    def attempt(target: Target) -> Streamed:
        manifest = manifest_of(target)
        local = plain_name(config, manifest)
        if not streams(local) or manifest.compression not in ("none", "zstd"):
            raise SnapshotError(f"{manifest.name}: stored as {manifest.compression}, not streamed")
        partial = work / f".{local.filename}.partial"
        partial.unlink(missing_ok=True)  # what a cut attempt wrote: each starts from nothing
        label = f"{stored.filename} from {location}"
        try:
            with TransferBar(env, label, manifest.size) as bar:
                where = f"{location}: {stored.filename}"
                check = _one_pass(target, manifest, partial, identities, bar.advance, where)
            final = work / local.filename
            os.replace(partial, final)
            return Streamed(local, final, check, manifest)
        finally:
            partial.unlink(missing_ok=True)

    return on_target(config.target(location), config.cluster_name, reporter, attempt)


def plain_name(config: Config, manifest: Manifest) -> naming.SnapshotName:
    """The name of the plain snapshot a manifest describes, if it is one of ours."""
    local = naming.parse(config.cluster_name, manifest.snapshot)
    if local is None or "/" in manifest.snapshot:
        raise SnapshotError(f"the manifest names {manifest.snapshot!r}: not a snapshot of ours")
    return local


def _one_pass(
    target: Target,
    manifest: Manifest,
    partial: Path,
    identities: Identities,
    advance: Callable[[int], object],
    where: str,
) -> SnapshotCheck:
    """The plain snapshot in `partial`, checked; `where` names the copy ("target: file")."""
    received: list[HashingWriter] = []  # the stored bytes as they arrive, for the decoder

    def download(pipe: BinaryIO) -> None:
        writer = HashingWriter(pipe, advance)
        received.append(writer)
        target.get(manifest.name, writer, manifest.size)

    with produced(download) as raw, _decoded(raw, manifest, identities) as (plain, inner):
        try:
            check = _write_and_check(plain, manifest, partial)
        except TargetUnreachable:
            raise
        except Exception as failure:
            _drain(plain, *inner, raw)  # the whole copy, so that its own hash has the last word
            _check_stored(manifest, received, where)
            raise failure from None
        _drain(raw)  # zstd may stop at the frame's end: the rest must still be read and hashed
        _check_stored(manifest, received, where)
    check_plain(manifest, check.size, check.sha256)
    return check


def _check_stored(manifest: Manifest, received: list[HashingWriter], where: str) -> None:
    size = received[0].size if received else 0
    check_stored(manifest, size, received[0].digest.hexdigest() if received else "", where)


def check_stored(manifest: Manifest, size: int, digest: str, where: str) -> None:
    """The stored copy is the bytes its manifest describes; `where` names it."""
    if size != manifest.size or digest != manifest.sha256:
        raise SnapshotError(
            f"{where} does not verify: SHA-256 {digest} ({size} bytes), the manifest says"
            f" {manifest.sha256} ({manifest.size} bytes): corrupted or truncated"
        )


def check_plain(manifest: Manifest, size: int, digest: str) -> None:
    """The decoded copy is the snapshot its manifest recorded."""
    if digest != manifest.plain_sha256 or size != manifest.plain_size:
        raise SnapshotError(
            f"{manifest.name} decodes to a file whose SHA-256 {digest} is not the"
            f" snapshot's {manifest.plain_sha256}"
        )


def _drain(*readers: Readable) -> None:
    """Read each to its end (outermost first, so a decoder thread finishes its input); a
    decoder's failure is already known, a link failure is the retry's."""
    for reader in readers:
        try:
            while reader.read(CHUNK_SIZE):
                pass
        except TargetUnreachable:
            raise
        except Exception:  # the decoder's own failure, raised by its caller
            continue


@contextlib.contextmanager
def _decoded(
    raw: Readable, manifest: Manifest, identities: Identities
) -> Iterator[tuple[Readable, tuple[Readable, ...]]]:
    """The plain snapshot read from `raw`, and the decoders' streams between (to drain)."""
    stream: Readable = raw
    inner: tuple[Readable, ...] = ()
    with contextlib.ExitStack() as stack:
        if manifest.encryption == "age":
            stream = stack.enter_context(_decrypted(raw, manifest, identities))
            inner = (stream,)
        elif manifest.encryption != "none":
            raise DecodeError(f"unknown encryption {manifest.encryption!r} in the manifest")
        if manifest.compression == "zstd":
            decompressor = zstandard.ZstdDecompressor()
            source = cast(IO[bytes], stream)  # it only calls read()
            stream = decompressor.stream_reader(
                source, read_size=CHUNK_SIZE, read_across_frames=True
            )
        yield _Decoding(stream, manifest.compression), inner


@contextlib.contextmanager
def _decrypted(raw: Readable, manifest: Manifest, identities: Identities) -> Iterator[Readable]:
    if not identities:
        raise DecodeError("it is age-encrypted: pass --identity FILE (the private key)")
    # age's plaintext is shorter than its ciphertext: a compressed form inside it is capped by
    # the stored size, a plain one by the plain size
    limit = manifest.size if manifest.compression != "none" else manifest.plain_size
    what = f"{manifest.name}, decoded,"

    def decrypt(pipe: BinaryIO) -> None:
        capped = CappedWriter(pipe, limit, what, PLAIN_LIMIT)
        try:
            pyrage.decrypt_io(raw, capped, identities)
        except pyrage.DecryptError as exc:
            raise DecodeError(
                f"cannot decrypt it with the given identity ({exc}): is it the private key of"
                " one of the recipients this target encrypts to?"
            ) from None
        except RefusedInput:
            raise
        except Exception as exc:
            if capped.refused is not None:  # pyrage may wrap what our writer raised
                raise capped.refused from None
            if isinstance(exc, OSError) and not isinstance(exc, TargetUnreachable):
                raise DecodeError(f"cannot decrypt (age): damaged or truncated ({exc})") from None
            raise

    with produced(decrypt) as plain:
        yield plain


class _Decoding:
    """Decoder failures in the words of the two-step fetch (DecodeError naming the form)."""

    def __init__(self, source: Readable, compression: str) -> None:
        self.source = source
        self.compression = compression

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self.source.read(size)
        except zstandard.ZstdError as exc:
            raise DecodeError(f"cannot decompress ({self.compression}): {exc}") from None


def _write_and_check(plain: Readable, manifest: Manifest, partial: Path) -> SnapshotCheck:
    """Write the plain snapshot to `partial` (0600), at most its manifest's size,
    checking it (trailer, bbolt pages, SHA-256) from the bytes as they pass."""
    limit = manifest.plain_size
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        try:
            check = check_stream(_Tee(plain, out), limit)
        except (DecodeError, RefusedInput):
            raise
        except SnapshotError as exc:  # in the words of a check of the file
            _refuse_more(plain, manifest)  # a bomb is a bomb before it is a bad snapshot
            raise SnapshotError(f"{partial.parent / manifest.snapshot}: {exc}") from None
        _refuse_more(plain, manifest)
    # Not fsynced: K3s reads it from the page cache right away, and a crash before then only
    # means fetching it again (the two-step fetch's plain file was not fsynced either).
    return check


def _refuse_more(plain: Readable, manifest: Manifest) -> None:
    """Nothing past the plain size the manifest gives: a decompression bomb, or a lie."""
    if plain.read(1):
        raise over_limit(f"{manifest.name}, decoded,", manifest.plain_size, PLAIN_LIMIT)


class _Tee:
    """Reads through from `source`, writing what passes to `dest`."""

    def __init__(self, source: Readable, dest: BinaryIO) -> None:
        self.source = source
        self.dest = dest
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        chunk = self.source.read(size)
        self.dest.write(chunk)
        self.size += len(chunk)
        return chunk
