"""Turn what the user typed (a file, one of our snapshot names, or `latest`) into a verified,
plain snapshot file: fetched from a target into a private temporary when needed, checked against
its manifest and its SHA-256 trailer, and unzipped when K3s compressed it.

Shared by inspect, diff, drill and extract; choosing a copy is catalogue/lookup.py's, fetching
and verifying it catalogue/retrieval.py's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from k3s_backup.catalogue.inventory import LOCAL, local_manifests
from k3s_backup.catalogue.lookup import choose, copies_of, find_copies, load_identities
from k3s_backup.catalogue.recovery_key import Trust
from k3s_backup.catalogue.retrieval import check_room, fetch_verified
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, SnapshotError
from k3s_backup.formats.bbolt import BoltError
from k3s_backup.formats.etcd_snapshot import TRAILER_SIZE, ZIP_ERRORS, check_file
from k3s_backup.plumbing.streams import sha256_stream
from k3s_backup.policy import naming
from k3s_backup.report import Reporter

SQLITE_MAGIC = b"SQLite format 3\x00"
# retrieval.fetch_verified has checked the manifest's SHA-256, unzipped, and checked the trailer.
FETCHED = "SHA-256 matches its manifest, SHA-256 trailer checked"
ConfigLoader = Callable[[], Config]


@dataclass(frozen=True)
class OpenedSnapshot:
    """A snapshot ready to be read in place: a file given by path, a local copy, or one fetched."""

    name: str  # as shown to the user
    location: str  # "file", "local" or a target's name
    path: Path  # the plain (unzipped) snapshot file
    file_size: int  # of the copy as stored (zip included)
    verified: str  # what was checked


def _private_file(directory: Path, name: str) -> Path:
    path = directory / name
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def _unzip(path: Path, workdir: Path) -> Path:
    """The single entry of a K3s `.zip`, written 0600 into our private `workdir` (zipfile
    writes no more than the entry's recorded size, which must fit on the disk)."""
    with zipfile.ZipFile(path) as archive:
        [info] = archive.infolist()
        check_room(f"unzipping {path.name}", info.file_size, workdir)
        plain = _private_file(workdir, "plain-" + Path(info.filename).name)
        with archive.open(info) as member, plain.open("wb") as out:
            shutil.copyfileobj(member, out, 1 << 20)
    return plain


def _refuse_sqlite(path: Path) -> None:
    with path.open("rb") as head:
        is_sqlite = head.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    if is_sqlite:
        raise SnapshotError(
            f"{path.name} is a SQLite (kine) snapshot: inspect, diff and drill read etcd"
            " snapshots only"
        )


def _check(path: Path) -> str:
    """Check the SHA-256 trailer (inside a `.zip` too); a raw bbolt copy has none."""
    _refuse_sqlite(path)
    if not path.name.endswith(".zip") and path.stat().st_size % 512 != TRAILER_SIZE:
        return "no SHA-256 trailer (a raw database file): not checked"
    check_file(path)
    return "SHA-256 trailer checked"


def _verify_local(config: Config, name: naming.SnapshotName) -> str:
    """Read a local copy in place (no copy of a large file): check it against its manifest."""
    filename = name.filename
    manifest = local_manifests(config).recorded(name)
    if manifest is None:
        return "no manifest recorded"
    with (config.snapshot_dir / filename).open("rb") as stream:
        if sha256_stream(stream) != manifest.sha256:
            raise SnapshotError(
                f"local: {filename} does not match its manifest's SHA-256: corrupted or truncated"
            )
    return "SHA-256 matches its manifest"


def _resolve(
    name: str,
    load_config: ConfigLoader,
    env: Environment,
    identity: Path | None,
    workdir: Path,
    allow_unauthenticated: bool,
) -> tuple[Path, str, str, str]:
    """(file, location, shown name, what was verified) for `name`: a file as it is; one of our
    names (or `latest`, or a unique prefix) from this node if it verifies there, else fetched
    and decoded from the first target whose copy verifies (catalogue/retrieval.py)."""
    as_path = Path(name)
    if as_path.is_file():
        return as_path, "file", name, ""
    config = load_config()
    quiet = replace(env, stdout=env.stderr)  # progress to stderr: stdout may be JSON
    reporter = Reporter(quiet, None)
    found, _unreadable = find_copies(config, reporter, None)
    chosen = choose(found, name)
    copies = copies_of(found, chosen)
    if copies[0].location == LOCAL:
        filename = copies[0].name.filename
        try:
            verified = _verify_local(config, copies[0].name)
            return config.snapshot_dir / filename, LOCAL, chosen, verified
        except (BackupError, OSError) as exc:  # a refused manifest too (a symlink, too big)
            reporter.warn(f"refusing the local copy: {exc}")
            copies = copies[1:]
            if not copies:
                raise
    identities = load_identities(identity)
    trust = Trust.of(config.recovery_key_file, allow_unauthenticated)
    fetched = fetch_verified(config, quiet, reporter, copies, workdir, identities, trust)
    return fetched.plain, fetched.location, chosen, FETCHED


@dataclass(frozen=True)
class SnapshotAccess:
    """How a reading command (inspect, diff, extract, drill) reaches the snapshots it is given
    by name: the configuration, the age identity for encrypted copies, and whether a copy
    without a MAC may be used. One value instead of the same three arguments through every
    layer."""

    load_config: ConfigLoader
    env: Environment
    identity: Path | None = None
    allow_unauthenticated: bool = False

    def open(self, name: str) -> AbstractContextManager[OpenedSnapshot]:
        return open_snapshot(
            name, self.load_config, self.env, self.identity, self.allow_unauthenticated
        )


def _work_parent(name: str, load_config: ConfigLoader) -> Path | None:
    """Where fetched copies are decoded: under the state dir, on disk, as restore's are (the
    system's temporary dir is often a small tmpfs, in RAM). A file given by its path needs no
    config; only a `.zip` of it is unzipped, into the system's temporary dir."""
    if Path(name).is_file():
        return None
    state_dir = load_config().state_dir
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SnapshotError(
            f"cannot create {state_dir} to fetch {name} into: {exc.strerror} (run as root?)"
        ) from None
    return state_dir


@contextmanager
def open_snapshot(
    name: str,
    load_config: ConfigLoader,
    env: Environment,
    identity: Path | None = None,
    allow_unauthenticated: bool = False,
) -> Iterator[OpenedSnapshot]:
    """A verified plain snapshot for `name`; temporaries are 0600 in a 0700 dir, then removed.
    `identity` is the age identity file for copies a target stores encrypted; a copy on a
    target whose manifest has no MAC is used only with `allow_unauthenticated`."""
    with tempfile.TemporaryDirectory(prefix="open-", dir=_work_parent(name, load_config)) as temp:
        workdir = Path(temp)
        stored, location, shown, verified = _resolve(
            name, load_config, env, identity, workdir, allow_unauthenticated
        )
        size = stored.stat().st_size
        try:
            if verified != FETCHED:
                checked = _check(stored)
                verified = f"{verified}, {checked}" if verified else checked
                if stored.name.endswith(".zip"):
                    try:
                        stored = _unzip(stored, workdir)
                    except ZIP_ERRORS as exc:
                        raise SnapshotError(f"{stored}: cannot unzip: {exc}") from exc
            _refuse_sqlite(stored)
        except OSError as exc:  # a failing disk, or a file that is no file (/proc, a device)
            raise SnapshotError(f"{stored}: cannot read it: {exc.strerror or exc}") from None
        yield OpenedSnapshot(shown, location, stored, size, verified)


@contextmanager
def damage_named(copy: OpenedSnapshot) -> Iterator[None]:
    """Damage found while reading the database of `copy`, reported with the copy's name."""
    try:
        yield
    except BoltError as exc:
        if copy.name in str(exc):
            raise
        raise BoltError(f"{copy.name} ({copy.location}): {exc}") from None
