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
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from k3s_backup import bundle
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode, SnapshotError
from k3s_backup.formats.etcd_snapshot import SnapshotCheck
from k3s_backup.inventory import (
    LOCAL,
    LocalManifests,
    local_bundle_path,
    local_copies,
    read_target_manifest,
    target_copies,
)
from k3s_backup.manifest import Manifest
from k3s_backup.policy import naming
from k3s_backup.report import Reporter, human_size
from k3s_backup.streams import copy_stream
from k3s_backup.targets.factory import open_target

LATEST = "latest"


class ChoiceError(BackupError):
    """The name given matches no snapshot, or more than one: a usage error."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Candidate:
    name: naming.SnapshotName
    location: str  # "local" or a target's name
    size: int


@dataclass(frozen=True)
class Fetched:
    name: naming.SnapshotName
    location: str
    plain: Path  # the plain, verified snapshot file
    check: SnapshotCheck


def _locations(config: Config, source: str | None) -> list[str]:
    """Where to look, in order of preference: this node first, then targets as configured."""
    if source is None:
        return [LOCAL, *(t.name for t in config.targets)]
    if source != LOCAL:
        config.target(source)  # a ConfigError naming the configured targets if unknown
    return [source]


def find_candidates(
    config: Config, reporter: Reporter, source: str | None
) -> tuple[list[Candidate], list[str]]:
    """Every copy of ours at the chosen locations, and the locations that could not be read."""
    found: list[Candidate] = []
    unreadable: list[str] = []
    for location in _locations(config, source):
        if location == LOCAL:
            copies = local_copies(config.snapshot_dir, config.cluster_name)
            found += [Candidate(c.name, LOCAL, c.size) for c in copies]
            continue
        try:
            with open_target(config.target(location), config.cluster_name) as target:
                copies = target_copies(target, config.cluster_name)
        except BackupError as exc:
            reporter.warn(f"cannot list {location}: {exc}")
            unreadable.append(location)
            continue
        found += [Candidate(c.name, location, c.size) for c in copies if c.has_manifest]
    return found, unreadable


def choose(candidates: list[Candidate], wanted: str) -> naming.SnapshotName:
    """`latest`, an exact file name, or a unique prefix of one."""
    names = sorted({c.name for c in candidates})
    if not names:
        raise SnapshotError("no snapshot of ours found at any location: nothing to restore")
    if wanted == LATEST:
        return names[-1]
    exact = [n for n in names if n.filename == wanted]
    if exact:
        return exact[0]
    matching = [n for n in names if n.filename.startswith(wanted)]
    if len(matching) == 1:
        return matching[0]
    shown = matching or names
    listing = "\n".join(f"  {n.filename}" for n in reversed(shown))
    if matching:
        raise ChoiceError(
            f"{wanted!r} matches {len(matching)} snapshots; be more precise:\n{listing}"
        )
    raise ChoiceError(f"no snapshot named {wanted!r}; these exist (newest first):\n{listing}")


def copies_of(candidates: list[Candidate], name: naming.SnapshotName) -> list[Candidate]:
    return [c for c in candidates if c.name == name]  # already in order of preference


class _Download:
    """A 0600 file that hashes what is written and drives a progress bar on a terminal."""

    def __init__(self, path: Path, label: str, size: int, env: Environment) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.out = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()
        self.size = 0
        self.bar: Any = None
        if env.stderr.isatty():
            import click

            self.bar = click.progressbar(length=size, label=label, file=env.stderr)
            self.bar.__enter__()

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.digest.update(data)
        self.size += len(data)
        if self.bar is not None:
            self.bar.update(len(data))
        return len(data)

    def __enter__(self) -> _Download:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.__exit__(exc_type, exc, tb)
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()


def _manifest_and_download(
    config: Config, copy: Candidate, dest: Path, env: Environment
) -> Manifest:
    label = f"{copy.name.filename} from {copy.location}"
    if copy.location == LOCAL:
        manifest = LocalManifests(config.state_dir, config.snapshot_dir, "k3s").get(copy.name)
        with (
            (config.snapshot_dir / copy.name.filename).open("rb") as source,
            _Download(dest, label, copy.size, env) as out,
        ):
            copy_stream(source, out)
    else:
        with open_target(config.target(copy.location), config.cluster_name) as target:
            manifest = read_target_manifest(target, copy.name.filename)
            with _Download(dest, label, copy.size, env) as out:
                target.get(copy.name.filename, out)
    if out.size != manifest.size or out.digest.hexdigest() != manifest.sha256:
        raise SnapshotError(
            f"{copy.location}: {copy.name.filename} does not verify: SHA-256"
            f" {out.digest.hexdigest()} ({out.size} bytes), the manifest says {manifest.sha256}"
            f" ({manifest.size} bytes): corrupted or truncated"
        )
    return manifest


def _unzip(archive: Path, name: naming.SnapshotName, workdir: Path) -> Path:
    """The single entry of a K3s `.zip`, written as a plain 0600 file."""
    plain = workdir / name.base
    try:
        with zipfile.ZipFile(archive) as zipped:
            entries = [info.filename for info in zipped.infolist()]
            if entries != [name.base]:
                raise SnapshotError(f"zip must hold exactly {name.base!r}, found {entries}")
            fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with zipped.open(name.base) as member, os.fdopen(fd, "wb") as out:
                copy_stream(member, out)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise SnapshotError(f"{name.filename}: zip is damaged: {exc}") from None
    archive.unlink()
    return plain


def _check_plain(path: Path) -> SnapshotCheck:
    from k3s_backup.formats.snapshot import check_snapshot  # etcd trailer+bbolt, or SQLite

    return check_snapshot(path)


def fetch_one(config: Config, env: Environment, copy: Candidate, workdir: Path) -> Fetched:
    """Download one copy into `workdir`, verify it, decode it; SnapshotError if it fails."""
    downloaded = workdir / copy.name.filename
    _manifest_and_download(config, copy, downloaded, env)
    plain = _unzip(downloaded, copy.name, workdir) if copy.name.suffix == ".zip" else downloaded
    check = _check_plain(plain)
    return Fetched(copy.name, copy.location, plain, check)


def fetch_verified(
    config: Config,
    env: Environment,
    reporter: Reporter,
    copies: list[Candidate],
    workdir: Path,
) -> Fetched:
    """The first copy that verifies, in order of preference; each failure is reported."""
    failures: list[str] = []
    for copy in copies:
        reporter.info(
            f"Fetching {copy.name.filename} from {copy.location} ({human_size(copy.size)})"
        )
        try:
            fetched = fetch_one(config, env, copy, workdir)
        except (BackupError, OSError) as exc:
            for leftover in (copy.name.filename, copy.name.base):
                (workdir / leftover).unlink(missing_ok=True)
            reporter.warn(f"refusing the copy on {copy.location}: {exc}")
            failures.append(f"{copy.location}: {exc}")
            continue
        reporter.info(
            f"Verified {copy.name.filename} from {copy.location}: SHA-256 matches its manifest,"
            " etcd snapshot trailer valid"
        )
        return fetched
    raise SnapshotError(
        f"no copy of {copies[0].name.filename} verifies; nothing was changed:\n"
        + "\n".join(f"  {failure}" for failure in failures)
    )


def fetch_bundle(
    config: Config, reporter: Reporter, name: naming.SnapshotName, locations: list[str]
) -> bundle.Bundle | None:
    """The restore bundle of `name`, from the first location that has a readable one."""
    for location in locations:
        try:
            if location == LOCAL:
                path = local_bundle_path(config.state_dir, name.filename)
                if path.is_file():
                    return bundle.read(path)
                continue
            with open_target(config.target(location), config.cluster_name) as target:
                filename = naming.bundle_name(name.filename)
                if target.stat(filename) is None:
                    continue
                buffer = io.BytesIO()
                target.get(filename, buffer)
                return bundle.from_bytes(buffer.getvalue(), f"{location}: {filename}")
        except BackupError as exc:
            reporter.warn(f"cannot read the restore bundle on {location}: {exc}")
    return None


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
) -> ExitCode:
    reporter = Reporter(env, None)
    out = out.absolute()
    if out.is_dir():
        raise ChoiceError(f"{out} is a directory; give the file to write, e.g. {out}/snapshot.db")
    if out.exists() and not force:
        raise ChoiceError(f"{out} already exists; not overwriting it (use --force to replace)")
    if not out.parent.is_dir():
        raise ChoiceError(f"{out.parent} does not exist; create it or write elsewhere")
    candidates, _ = find_candidates(config, reporter, source)
    name = choose(candidates, wanted)
    workdir = private_workdir(out.parent, f".{out.name}.partial-")
    try:
        fetched = fetch_verified(config, env, reporter, copies_of(candidates, name), workdir)
        os.replace(fetched.plain, out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if name.suffix == ".db":
        how = "with K3s stopped, it replaces <data-dir>/server/db/state.db (drop -wal and -shm)"
    else:
        how = f"restore it with `k3s server --cluster-reset --cluster-reset-restore-path={out}`"
    reporter.info(
        f"Wrote {out} ({human_size(fetched.check.size)}): the plain snapshot, verified; {how}"
    )
    return ExitCode.OK
