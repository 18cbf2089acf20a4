"""Getting a copy of ours back, verified: downloaded into a private (0700) directory as a 0600
file, never into K3s's snapshot dir (K3s takes every file there for a snapshot), its SHA-256
checked against its manifest, its storage form undone (zstd/zip, age), a `.zip` unzipped (some
K3s releases break on `.zip`), and the plain file checked against its etcd SHA-256 trailer and
bbolt pages (or SQLite's integrity check). Also the restore bundle beside a copy, authenticated.

The first half of `fetch`, `restore` and of opening a copy for inspect, diff and drill.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from k3s_backup.catalogue import bundle, download
from k3s_backup.catalogue.inventory import (
    LOCAL,
    Copy,
    local_bundle_path,
    local_manifests,
    read_target_manifest,
)
from k3s_backup.catalogue.manifest import Manifest
from k3s_backup.catalogue.recovery_key import NotAuthentic, Trust, age_identity
from k3s_backup.catalogue.storage_form import Identities, decode, decrypt_bytes
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, SnapshotError
from k3s_backup.formats.etcd_snapshot import SnapshotCheck
from k3s_backup.plumbing.closable import Closable
from k3s_backup.plumbing.progress import TransferBar
from k3s_backup.plumbing.streams import (
    HashingWriter,
    copy_capped,
    read_regular,
    sha256_stream,
)
from k3s_backup.policy import naming
from k3s_backup.policy.identity import ClusterIdentity
from k3s_backup.report import Reporter, human_size
from k3s_backup.targets.base import Target
from k3s_backup.targets.retry import on_target, without_name

AGE_HEADER = b"age-encryption.org/v1"
Warn = Callable[[str], None]


@dataclass(frozen=True)
class FetchedCopy:
    """A copy downloaded and verified: the plain snapshot file as this node made it."""

    name: naming.SnapshotName  # the snapshot's local name (`.zip` or `.db` kept)
    location: str  # where it was fetched from
    plain: Path  # the plain, verified snapshot file (unzipped)
    check: SnapshotCheck
    # The cluster identity its authenticated manifest records for these very bytes (run read
    # it from them), so that it need not be read again; `recorded` False: read it from `plain`.
    recorded: bool = False
    identity: ClusterIdentity | None = None


class _Download(HashingWriter, Closable):
    """A 0600 file that hashes what is written and drives a progress bar on a terminal."""

    def __init__(self, path: Path, label: str, size: int, env: Environment) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.bar = TransferBar(env, label, size).__enter__()
        super().__init__(os.fdopen(fd, "wb"), self.bar.advance)

    def finish(self, ok: bool) -> None:
        self.bar.finish(ok)
        self.dest.flush()
        os.fsync(self.dest.fileno())
        self.dest.close()


def _room_needed(manifest: Manifest) -> int:
    """Bytes a fetch writes: the stored copy, what decrypting it makes before it is
    decompressed, and the plain file."""
    decoded = manifest.compression != "none" or manifest.encryption != "none"
    both = manifest.compression != "none" and manifest.encryption != "none"
    return manifest.size + (manifest.plain_size if decoded else 0) + (manifest.size if both else 0)


def check_room(what: str, needed: int, directory: Path) -> None:
    """Refuse before writing anything when `directory`'s disk cannot hold `needed` bytes: a
    fetch must never fill the disk it shares (the state dir's is often K3s's own)."""
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise SnapshotError(
            f"{what} needs {human_size(needed)} ({needed} bytes) in {directory}, which has"
            f" {human_size(free)} free: free some space there, or fetch to another disk"
        )


def _check_announced(copy: Copy, manifest: Manifest, dest: Path) -> None:
    """Before any byte is downloaded: the listing's size is the manifest's, and it all fits."""
    where = f"{copy.location}: {copy.name.filename}"
    if copy.size != manifest.size:
        raise SnapshotError(
            f"{where} does not verify: {copy.size} bytes stored, the manifest says"
            f" {manifest.size} bytes: corrupted, truncated or planted"
        )
    check_room(f"fetching {where}", _room_needed(manifest), dest.parent)


def _authentic_manifest(
    config: Config, target: Target, copy: Copy, trust: Trust, warn: Warn
) -> Manifest:
    """The manifest of a copy on a target, once it authenticates (recovery_key.Trust)."""
    manifest = read_target_manifest(target, copy.name.filename)
    encrypting = bool(config.target(copy.location).age_recipients)
    checked = trust.check(manifest, copy.name.filename, copy.location, encrypting)
    if checked.startswith("UNAUTHENTICATED"):
        warn(f"{copy.location}: {copy.name.filename} is {checked}")
    return manifest


def _manifest_and_download(
    config: Config, copy: Copy, dest: Path, env: Environment, trust: Trust
) -> Manifest:
    label = f"{copy.name.filename} from {copy.location}"
    if copy.location == LOCAL:
        manifest = local_manifests(config).get(copy.name)
        _check_announced(copy, manifest, dest)
        with (
            (config.snapshot_dir / copy.name.filename).open("rb") as source,
            _Download(dest, label, copy.size, env) as out,
        ):
            where = f"local: {copy.name.filename}"
            copy_capped(source, out, manifest.size, where, "the size its manifest gives")
    else:
        reporter = Reporter(env, None)

        def get(target: Target) -> tuple[Manifest, _Download]:
            manifest = _authentic_manifest(config, target, copy, trust, reporter.warn)
            _check_announced(copy, manifest, dest)
            dest.unlink(missing_ok=True)  # what a cut attempt wrote: each starts from nothing
            with _Download(dest, label, copy.size, env) as out:
                target.get(copy.name.filename, out, manifest.size)
            return manifest, out

        target_config = config.target(copy.location)
        manifest, out = on_target(target_config, config.cluster_name, reporter, get)
    where = f"{copy.location}: {copy.name.filename}"
    download.check_stored(manifest, out.size, out.digest.hexdigest(), where)
    return manifest


def _unzip(archive: Path, name: naming.SnapshotName, workdir: Path) -> Path:
    """The single entry of a K3s `.zip`, written as a plain 0600 file. zipfile never writes
    more than the entry's recorded size; that size must fit on the disk before it starts."""
    plain = workdir / name.base
    try:
        with zipfile.ZipFile(archive) as zipped:
            entries = zipped.infolist()
            if [info.filename for info in entries] != [name.base]:
                found = [info.filename for info in entries]
                raise SnapshotError(f"zip must hold exactly {name.base!r}, found {found}")
            size = entries[0].file_size
            check_room(f"unzipping {name.filename}", size, workdir)
            fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with zipped.open(name.base) as member, os.fdopen(fd, "wb") as out:
                copy_capped(member, out, size, name.filename, "the size its zip entry gives")
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise SnapshotError(f"{name.filename}: zip is damaged: {exc}") from None
    archive.unlink()
    return plain


def _check_plain(path: Path) -> SnapshotCheck:
    from k3s_backup.formats.snapshot import check_snapshot  # etcd trailer+bbolt, or SQLite

    return check_snapshot(path)


def _local_form(
    config: Config, manifest: Manifest, stored: Path, work: Path, identities: Identities
) -> Path:
    """Undo the target's storage form (zstd/zip, age): the snapshot file as this node made it,
    checked against the plain SHA-256 the manifest recorded."""
    local = download.plain_name(config, manifest)
    if manifest.compression == "none" and manifest.encryption == "none":
        decoded = stored
    else:
        decoded = decode(
            stored,
            manifest.compression,
            manifest.encryption,
            identities,
            work,
            manifest.plain_size,
            manifest.name,
        )
    with decoded.open("rb") as stream:
        digest = sha256_stream(stream)
    download.check_plain(manifest, decoded.stat().st_size, digest)
    return decoded.rename(work / local.filename)


def fetch_one(
    config: Config,
    env: Environment,
    copy: Copy,
    workdir: Path,
    identities: Identities,
    trust: Trust | None = None,
) -> FetchedCopy:
    """Download one copy into its own directory under `workdir`, verify it, decode it;
    SnapshotError (or DecodeError) if it fails, leaving nothing behind."""
    work = Path(tempfile.mkdtemp(prefix="copy-", dir=workdir))
    try:
        downloaded = work / f"stored-{copy.name.filename}"
        trust = trust or Trust.of(config.recovery_key_file)
        if copy.location != LOCAL and download.streams(copy.name):
            warn = Reporter(env, None).warn

            def manifest_of(target: Target) -> Manifest:
                manifest = _authentic_manifest(config, target, copy, trust, warn)
                _check_announced(copy, manifest, downloaded)
                return manifest

            got = download.fetch_streamed(
                config, env, copy.location, copy.name, manifest_of, work, identities
            )
            recorded = bool(got.manifest.mac) and got.manifest.cluster_uid is not None
            identity = got.manifest.identity
            return FetchedCopy(got.name, copy.location, got.plain, got.check, recorded, identity)
        manifest = _manifest_and_download(config, copy, downloaded, env, trust)
        local_file = _local_form(config, manifest, downloaded, work, identities)
        local = naming.parse(config.cluster_name, local_file.name)
        assert local is not None  # checked in _local_form
        plain = _unzip(local_file, local, work) if local.suffix == ".zip" else local_file
        return FetchedCopy(local, copy.location, plain, _check_plain(plain))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def fetch_verified(
    config: Config,
    env: Environment,
    reporter: Reporter,
    copies: list[Copy],
    workdir: Path,
    identities: Identities,
    trust: Trust | None = None,
) -> FetchedCopy:
    """The first copy that verifies, in order of preference; each failure is reported."""
    failures: list[str] = []
    for copy in copies:
        reporter.info(
            f"Fetching {copy.name.filename} from {copy.location} ({human_size(copy.size)})"
        )
        try:
            fetched = fetch_one(config, env, copy, workdir, identities, trust)
        except (BackupError, OSError) as exc:
            said = without_name(copy.location, exc)  # the location is named once
            reporter.warn(f"refusing the copy on {copy.location}: {said}")
            failures.append(f"{copy.location}: {said}")
            continue
        reporter.info(
            f"Verified {copy.name.filename} from {copy.location}: SHA-256 matches its manifest,"
            " etcd snapshot trailer valid"
        )
        return fetched
    raise SnapshotError(
        f"no copy of {copies[0].snapshot} verifies; nothing was changed:\n"
        + "\n".join(f"  {failure}" for failure in failures)
    )


THIS_NODE = "this node"  # a bundle binding: our own file under state_dir


def _bundle_bytes(
    config: Config, copy: Copy, trust: Trust, reporter: Reporter
) -> tuple[bytes, str | None] | None:
    """The bundle's bytes and what binds it: THIS_NODE for a local bundle, the SHA-256 the
    copy's authenticated manifest records for it, or None for an unauthenticated copy that
    --allow-unauthenticated lets through. None if there is no bundle."""
    if copy.location == LOCAL:
        path = local_bundle_path(config.state_dir, copy.name.filename)
        try:
            return read_regular(path, bundle.MAX_BUNDLE, str(path)), THIS_NODE
        except FileNotFoundError:
            return None

    def read(target: Target) -> tuple[bytes, str | None] | None:
        filename = naming.bundle_name(copy.name.filename)
        if target.stat(filename) is None:
            return None
        manifest = _authentic_manifest(config, target, copy, trust, reporter.warn)
        buffer = io.BytesIO()  # a new one each attempt
        target.get(filename, buffer, bundle.MAX_BUNDLE)
        return buffer.getvalue(), manifest.bundle_sha256 if manifest.mac else None

    return on_target(config.target(copy.location), config.cluster_name, reporter, read)


def _open_bundle(
    body: bytes, binding: str | None, identities: Identities, trust: Trust, origin: str
) -> bundle.Bundle:
    """Decrypt (the target's age identity, else the recovery key's), then check the plain
    bundle against what binds it to its copy."""
    encrypted = body.startswith(AGE_HEADER)
    if binding not in (None, THIS_NODE) and not encrypted:
        raise NotAuthentic(f"{origin} is in clear: ours never are on a target (planted)")
    if encrypted:
        keys = [*identities, *([age_identity(trust.key)] if trust.key else [])]
        body = decrypt_bytes(body, keys)
    if binding not in (None, THIS_NODE):
        digest = hashlib.sha256(body).hexdigest()
        if not binding:
            raise NotAuthentic(f"{origin}: its copy's manifest authenticates no bundle (planted)")
        if digest != binding:
            raise NotAuthentic(
                f"{origin} is not the bundle its copy's manifest authenticates (SHA-256 {digest},"
                f" the manifest says {binding}): replaced on the target"
            )
    return bundle.from_bytes(body, origin)


def fetch_bundle(
    config: Config,
    reporter: Reporter,
    copies: list[Copy],
    identities: Identities,
    trust: Trust | None = None,
) -> bundle.Bundle | None:
    """The restore bundle beside the first of `copies` that has a readable, authentic one
    (decrypted with the target's age identity or the recovery key's)."""
    trust = trust or Trust.of(config.recovery_key_file)
    for copy in copies:
        origin = f"{copy.location}: {naming.bundle_name(copy.name.filename)}"
        try:
            found = _bundle_bytes(config, copy, trust, reporter)
            if found is None:
                continue
            return _open_bundle(found[0], found[1], identities, trust, origin)
        except (BackupError, OSError) as exc:
            reporter.warn(f"cannot read the restore bundle {origin}: {exc}")
    return None


def private_workdir(parent: Path, prefix: str) -> Path:
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))  # mode 0700
