"""`k3s-backup fetch NAME --out FILE`: choose a copy, download it, verify it, decode it.

The same steps are the first half of `restore`: a copy is downloaded into a private (0700)
directory as a 0600 file, never into K3s's snapshot dir (K3s takes every file there for a
snapshot), its SHA-256 checked against its manifest, a `.zip` unzipped (some K3s releases break
on `.zip`), and the plain file checked against its etcd SHA-256 trailer and bbolt pages.
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
from types import TracebackType

import click
import pyrage

from k3s_backup.catalogue import bundle, download
from k3s_backup.catalogue.inventory import (
    LOCAL,
    Copy,
    LocalManifests,
    local_bundle_path,
    local_copies,
    read_target_manifest,
    target_copies,
    with_identities,
)
from k3s_backup.catalogue.manifest import Manifest
from k3s_backup.catalogue.recovery_key import NotAuthentic, Trust, age_identity
from k3s_backup.catalogue.storage_form import decode, decrypt_bytes, read_identities
from k3s_backup.cli_options import (
    AGE_IDENTITY_OPTION,
    ALLOW_UNAUTHENTICATED_OPTION,
    FROM_OPTION,
    Context,
    epilog,
    pass_context,
)
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode, SnapshotError
from k3s_backup.formats.etcd_snapshot import SnapshotCheck
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
from k3s_backup.targets.retry import on_target, one_connection_each

LATEST = "latest"
AGE_HEADER = b"age-encryption.org/v1"
Identities = list[pyrage.x25519.Identity]
Warn = Callable[[str], None]


class ChoiceError(BackupError):
    """The name given matches no snapshot, or more than one: a usage error."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Candidate:
    name: naming.SnapshotName  # the stored file's name (`.zst`, `.age`, ... on a target)
    location: str  # "local" or a target's name
    size: int
    identity: ClusterIdentity | None = None  # the cluster its manifest records; None: unknown

    @property
    def snapshot(self) -> str:
        """The snapshot's name without any suffix: the same for every stored form of it."""
        return self.name.base


@dataclass(frozen=True)
class Fetched:
    name: naming.SnapshotName
    location: str
    plain: Path  # the plain, verified snapshot file
    check: SnapshotCheck
    # The cluster identity its authenticated manifest records for these very bytes (run read
    # it from them), so that it need not be read again; `recorded` False: read it from `plain`.
    recorded: bool = False
    identity: ClusterIdentity | None = None


def _locations(config: Config, source: str | None) -> list[str]:
    """Where to look, in order of preference: this node first, then targets as configured."""
    if source is None:
        return [LOCAL, *(t.name for t in config.targets)]
    if source != LOCAL:
        config.target(source)  # a ConfigError naming the configured targets if unknown
    return [source]


def find_candidates(
    config: Config, reporter: Reporter, source: str | None, identities: bool = False
) -> tuple[list[Candidate], list[str]]:
    """Every copy of ours at the chosen locations, and the locations that could not be read;
    with `identities`, each with the cluster identity its manifest records (one more read per
    copy on a target)."""
    found: list[Candidate] = []
    unreadable: list[str] = []
    manifests = LocalManifests(config.state_dir, config.snapshot_dir, "k3s")
    local = local_copies(config.snapshot_dir, config.cluster_name)
    if identities:
        local = manifests.with_identities(local)
    for location in _locations(config, source):
        if location == LOCAL:
            found += [Candidate(c.name, LOCAL, c.size, c.identity) for c in local]
            continue

        def listed(target: Target) -> list[Copy]:
            copies = [c for c in target_copies(target, config.cluster_name) if c.has_manifest]
            return with_identities(target, copies, manifests.known(local)) if identities else copies

        try:
            copies = on_target(config.target(location), config.cluster_name, reporter, listed)
        except BackupError as exc:
            reporter.warn(f"cannot list {location}: {exc}")
            unreadable.append(location)
            continue
        found += [Candidate(c.name, location, c.size, c.identity) for c in copies]
    return found, unreadable


def _newest_first(candidates: list[Candidate]) -> list[str]:
    newest = {c.snapshot: c.name for c in candidates}  # one entry per snapshot, any form
    return [base for base, _ in sorted(newest.items(), key=lambda item: item[1], reverse=True)]


def choose(candidates: list[Candidate], wanted: str) -> str:
    """The snapshot meant by `latest`, a file name in any stored form, or a unique prefix."""
    names = _newest_first(candidates)
    if not names:
        raise SnapshotError("no snapshot of ours found at any location: nothing to restore")
    if wanted == LATEST:
        return names[0]
    exact = {c.snapshot for c in candidates if wanted in (c.snapshot, c.name.filename)}
    if exact:
        return exact.pop()
    matching = [n for n in names if n.startswith(wanted)]
    if len(matching) == 1:
        return matching[0]
    shown = matching or names
    listing = "\n".join(f"  {n}" for n in shown)
    if matching:
        raise ChoiceError(
            f"{wanted!r} matches {len(matching)} snapshots; be more precise:\n{listing}"
        )
    raise ChoiceError(f"no snapshot named {wanted!r}; these exist (newest first):\n{listing}")


def copies_of(candidates: list[Candidate], snapshot: str) -> list[Candidate]:
    return [c for c in candidates if c.snapshot == snapshot]  # already in order of preference


class _Download(HashingWriter):
    """A 0600 file that hashes what is written and drives a progress bar on a terminal."""

    def __init__(self, path: Path, label: str, size: int, env: Environment) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        super().__init__(os.fdopen(fd, "wb"))
        self.bar = TransferBar(env, label, size).__enter__()

    def write(self, data: bytes) -> int:
        self.bar.advance(len(data))
        return super().write(data)

    def __enter__(self) -> _Download:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bar.__exit__(exc_type, exc, tb)
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


def _check_announced(copy: Candidate, manifest: Manifest, dest: Path) -> None:
    """Before any byte is downloaded: the listing's size is the manifest's, and it all fits."""
    where = f"{copy.location}: {copy.name.filename}"
    if copy.size != manifest.size:
        raise SnapshotError(
            f"{where} does not verify: {copy.size} bytes stored, the manifest says"
            f" {manifest.size} bytes: corrupted, truncated or planted"
        )
    check_room(f"fetching {where}", _room_needed(manifest), dest.parent)


def _authentic_manifest(
    config: Config, target: Target, copy: Candidate, trust: Trust, warn: Warn
) -> Manifest:
    """The manifest of a copy on a target, once it authenticates (recovery_key.Trust)."""
    manifest = read_target_manifest(target, copy.name.filename)
    encrypting = bool(config.target(copy.location).age_recipients)
    checked = trust.check(manifest, copy.name.filename, copy.location, encrypting)
    if checked.startswith("UNAUTHENTICATED"):
        warn(f"{copy.location}: {copy.name.filename} is {checked}")
    return manifest


def _manifest_and_download(
    config: Config, copy: Candidate, dest: Path, env: Environment, trust: Trust
) -> Manifest:
    label = f"{copy.name.filename} from {copy.location}"
    if copy.location == LOCAL:
        manifest = LocalManifests(config.state_dir, config.snapshot_dir, "k3s").get(copy.name)
        _check_announced(copy, manifest, dest)
        with (
            (config.snapshot_dir / copy.name.filename).open("rb") as source,
            _Download(dest, label, copy.size, env) as out,
        ):
            where = f"local: {copy.name.filename}"
            copy_capped(source, out, manifest.size, where, "the size its manifest gives")
    else:
        reporter = Reporter(env, None)

        def download(target: Target) -> tuple[Manifest, _Download]:
            manifest = _authentic_manifest(config, target, copy, trust, reporter.warn)
            _check_announced(copy, manifest, dest)
            dest.unlink(missing_ok=True)  # what a cut attempt wrote: each starts from nothing
            with _Download(dest, label, copy.size, env) as out:
                target.get(copy.name.filename, out, manifest.size)
            return manifest, out

        target_config = config.target(copy.location)
        manifest, out = on_target(target_config, config.cluster_name, reporter, download)
    if out.size != manifest.size or out.digest.hexdigest() != manifest.sha256:
        raise SnapshotError(
            f"{copy.location}: {copy.name.filename} does not verify: SHA-256"
            f" {out.digest.hexdigest()} ({out.size} bytes), the manifest says {manifest.sha256}"
            f" ({manifest.size} bytes): corrupted or truncated"
        )
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
    local = naming.parse(config.cluster_name, manifest.snapshot)
    if local is None or "/" in manifest.snapshot:
        raise SnapshotError(f"the manifest names {manifest.snapshot!r}: not a snapshot of ours")
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
    if digest != manifest.plain_sha256 or decoded.stat().st_size != manifest.plain_size:
        raise SnapshotError(
            f"{manifest.name} decodes to a file whose SHA-256 {digest} is not the snapshot's"
            f" {manifest.plain_sha256}"
        )
    return decoded.rename(work / local.filename)


def fetch_one(
    config: Config,
    env: Environment,
    copy: Candidate,
    workdir: Path,
    identities: Identities,
    trust: Trust | None = None,
) -> Fetched:
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
            return Fetched(got.name, copy.location, got.plain, got.check, recorded, identity)
        manifest = _manifest_and_download(config, copy, downloaded, env, trust)
        local_file = _local_form(config, manifest, downloaded, work, identities)
        local = naming.parse(config.cluster_name, local_file.name)
        assert local is not None  # checked in _local_form
        plain = _unzip(local_file, local, work) if local.suffix == ".zip" else local_file
        return Fetched(local, copy.location, plain, _check_plain(plain))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def fetch_verified(
    config: Config,
    env: Environment,
    reporter: Reporter,
    copies: list[Candidate],
    workdir: Path,
    identities: Identities,
    trust: Trust | None = None,
) -> Fetched:
    """The first copy that verifies, in order of preference; each failure is reported."""
    failures: list[str] = []
    for copy in copies:
        reporter.info(
            f"Fetching {copy.name.filename} from {copy.location} ({human_size(copy.size)})"
        )
        try:
            fetched = fetch_one(config, env, copy, workdir, identities, trust)
        except (BackupError, OSError) as exc:
            reporter.warn(f"refusing the copy on {copy.location}: {exc}")
            failures.append(f"{copy.location}: {exc}")
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
    config: Config, copy: Candidate, trust: Trust, reporter: Reporter
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
    copies: list[Candidate],
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


def load_identities(identity: Path | None) -> Identities:
    """The age private keys of `--identity FILE`, needed only for encrypted copies."""
    return read_identities(identity) if identity is not None else []


def private_workdir(parent: Path, prefix: str) -> Path:
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))  # mode 0700


def fetch(
    config: Config,
    env: Environment,
    wanted: str,
    out: Path,
    source: str | None,
    force: bool,
    identity: Path | None = None,
    allow_unauthenticated: bool = False,
) -> ExitCode:
    reporter = Reporter(env, None)
    identities = load_identities(identity)
    trust = Trust.of(config.recovery_key_file, allow_unauthenticated)
    out = out.absolute()
    if out.is_dir():
        raise ChoiceError(f"{out} is a directory; give the file to write, e.g. {out}/snapshot.db")
    if out.exists() and not force:
        raise ChoiceError(f"{out} already exists; not overwriting it (use --force to replace)")
    if not out.parent.is_dir():
        raise ChoiceError(f"{out.parent} does not exist; create it or write elsewhere")
    with one_connection_each():  # the listing, the manifest and the copy on one connection
        candidates, _ = find_candidates(config, reporter, source)
        name = choose(candidates, wanted)
        workdir = private_workdir(out.parent, f".{out.name}.partial-")
        try:
            copies = copies_of(candidates, name)
            fetched = fetch_verified(config, env, reporter, copies, workdir, identities, trust)
            os.replace(fetched.plain, out)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if fetched.name.suffix == ".db":
        how = "with K3s stopped, it replaces <data-dir>/server/db/state.db (drop -wal and -shm)"
    else:
        how = f"restore it with `k3s server --cluster-reset --cluster-reset-restore-path={out}`"
    reporter.info(
        f"Wrote {out} ({human_size(fetched.check.size)}): the plain snapshot, verified; {how}"
    )
    return ExitCode.OK


@click.command("fetch", epilog=epilog("fetch"))
@click.argument("name")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="The plain snapshot file to write (mode 0600).",
)
@FROM_OPTION
@click.option("--force", is_flag=True, help="Replace an existing FILE.")
@AGE_IDENTITY_OPTION
@ALLOW_UNAUTHENTICATED_OPTION
@pass_context
def command(
    ctx: Context,
    name: str,
    out: Path,
    source: str | None,
    force: bool,
    identity: Path | None,
    allow_unauthenticated: bool,
) -> int:
    """Download, verify and decode snapshot NAME into a plain file usable by K3s or etcdutl."""
    return fetch(ctx.config(), ctx.env, name, out, source, force, identity, allow_unauthenticated)
