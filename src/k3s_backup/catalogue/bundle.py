"""The restore bundle: what a snapshot alone cannot restore, shipped beside every snapshot.

K3s encrypts its bootstrap data with the server token, so a rebuilt node cannot use a snapshot
without it; the K3s config and version explain how the node ran. The bundle is a small tar
(stdlib tarfile): `bundle.json` (snapshot, node, K3s version, created), `token`, `config.yaml`,
`config.yaml.d/*` and, with `--secrets-encryption`, `encryption-config.json` (the keys `extract`
needs to read Secrets encrypted at rest on another node). It holds secrets: mode 0600
everywhere, never logged.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from k3s_backup.errors import BackupError
from k3s_backup.plumbing.atomic import write_atomic
from k3s_backup.plumbing.commands import CommandError, Running, start_command

FORMAT = 1
META = "bundle.json"
TOKEN = "token"
CONFIG = "config.yaml"
CONFIG_D = "config.yaml.d"
ENCRYPTION_CONFIG = "encryption-config.json"
MAX_MEMBER = 4 << 20  # a token and a few YAML files; anything bigger is not a bundle of ours
MAX_BUNDLE = 8 << 20  # the whole bundle as stored (tar, maybe age-encrypted), read into memory
MAX_TOTAL = 8 << 20  # all members together: a tar's headers alone can claim far more
VERSION_TIMEOUT = 30
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:[-+]k3s(\d+))?")
_CONFIG_D_NAME = re.compile(r"[A-Za-z0-9._-]+")


class BundleError(BackupError):
    """A bundle could not be made or read."""


@dataclass(frozen=True)
class Bundle:
    snapshot: str
    node: str
    k3s_version: str | None
    token: str
    created: str
    config_files: dict[str, bytes] = field(default_factory=dict)  # "config.yaml", ...


def token_path(data_dir: Path) -> Path:
    return data_dir / "server" / "token"


def version_key(version: str) -> tuple[int, int, int, int] | None:
    """(major, minor, patch, k3s release) of `v1.33.4+k3s1`, or None if unrecognised."""
    match = _VERSION_RE.search(version)
    if match is None:
        return None
    major, minor, patch, release = match.groups()
    return int(major), int(minor), int(patch), int(release or 0)


class K3sVersion:
    """`k3s --version`, started at once and asked later: `run` has it answer while the
    snapshot is taken, `restore` while the copy is fetched. `stop()` ends it when nobody will
    ask (the snapshot or the fetch failed)."""

    def __init__(self, k3s_bin: str, environ: Mapping[str, str]) -> None:
        self._running: Running | None = None
        with contextlib.suppress(CommandError):  # no such program: unknown, as when it fails
            argv = [k3s_bin, "--version"]
            self._running = start_command(argv, timeout=VERSION_TIMEOUT, env=environ)

    def result(self) -> str | None:
        """The version it reports (`v1.33.4+k3s1`), or None if it cannot say."""
        if self._running is None:
            return None
        try:
            result = self._running.wait()
        except CommandError:
            return None
        first = (result.stdout.strip().splitlines() or [""])[0]
        match = re.match(r"k3s version (\S+)", first)
        return match.group(1) if result.returncode == 0 and match else None

    def stop(self) -> None:
        if self._running is not None:
            self._running.stop()


def encryption_config_path(data_dir: Path) -> Path:
    return data_dir / "server" / "cred" / ENCRYPTION_CONFIG


def _config_files(config_dir: Path, data_dir: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    encryption = encryption_config_path(data_dir)
    if encryption.is_file():
        files[ENCRYPTION_CONFIG] = encryption.read_bytes()
    config = config_dir / CONFIG
    if config.is_file():
        files[CONFIG] = config.read_bytes()
    drop_ins = config_dir / CONFIG_D
    if drop_ins.is_dir():
        for entry in sorted(drop_ins.iterdir()):
            if entry.is_file() and _CONFIG_D_NAME.fullmatch(entry.name):
                files[f"{CONFIG_D}/{entry.name}"] = entry.read_bytes()
    return files


def collect(
    snapshot: str,
    node: str,
    created: str,
    data_dir: Path,
    config_dir: Path,
    k3s_bin: str,
    environ: Mapping[str, str],
    version: K3sVersion | None = None,
) -> Bundle:
    """Gather the bundle of `snapshot` from this node; BundleError if the token is unreadable.
    `version`: `k3s --version` already started, else it is run here."""
    path = token_path(data_dir)
    try:
        token = path.read_text(encoding="utf-8").strip()
        files = _config_files(config_dir, data_dir)
    except OSError as exc:
        raise BundleError(f"cannot read {exc.filename}: {exc.strerror}") from None
    if not token:
        raise BundleError(f"{path} is empty")
    return Bundle(
        snapshot=snapshot,
        node=node,
        k3s_version=(version or K3sVersion(k3s_bin, environ)).result(),
        token=token,
        created=created,
        config_files=files,
    )


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(data))


def to_bytes(bundle: Bundle) -> bytes:
    meta = {
        "format": FORMAT,
        "snapshot": bundle.snapshot,
        "node": bundle.node,
        "k3s_version": bundle.k3s_version,
        "created": bundle.created,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _add(archive, META, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
        _add(archive, TOKEN, (bundle.token + "\n").encode())
        for name, data in sorted(bundle.config_files.items()):
            _add(archive, name, data)
    return buffer.getvalue()


def _allowed(name: str) -> bool:
    if name in (META, TOKEN, CONFIG, ENCRYPTION_CONFIG):
        return True
    folder, _, leaf = name.partition("/")
    return folder == CONFIG_D and bool(_CONFIG_D_NAME.fullmatch(leaf)) and leaf not in (".", "..")


def _members(data: bytes, origin: str) -> dict[str, bytes]:
    """Only what we write: plain files of our names, once each. A sparse member is refused: its
    header alone claims megabytes of zeros, so a few KiB of tar could fill the memory."""
    members: dict[str, bytes] = {}
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            total += info.size
            if (
                not info.isfile()
                or info.issparse()
                or not _allowed(info.name)
                or info.name in members
                or info.size > MAX_MEMBER
                or total > MAX_TOTAL
            ):
                raise BundleError(f"{origin}: unexpected member {info.name!r}: not our bundle")
            stream = archive.extractfile(info)
            if stream is None:
                raise BundleError(f"{origin}: cannot read {info.name!r}")
            members[info.name] = stream.read()
    return members


def from_bytes(data: bytes, origin: str) -> Bundle:
    """Parse a bundle (only the members we write are accepted; nothing is extracted to disk)."""
    try:
        members = _members(data, origin)
        meta = json.loads(members[META])
        if not isinstance(meta, dict):
            raise ValueError(f"{META} is not a JSON object")
        token = members[TOKEN].decode("utf-8").strip()
        version = meta.get("k3s_version")
        return Bundle(
            snapshot=str(meta["snapshot"]),
            node=str(meta["node"]),
            k3s_version=None if version is None else str(version),
            token=token,
            created=str(meta["created"]),
            config_files={k: v for k, v in members.items() if k not in (META, TOKEN)},
        )
    except RecursionError:
        raise BundleError(f"{origin}: damaged restore bundle ({META} nested too deeply)") from None
    except (tarfile.TarError, KeyError, ValueError, UnicodeDecodeError, TypeError) as exc:
        raise BundleError(f"{origin}: damaged restore bundle ({exc})") from None


def write(bundle: Bundle, path: Path) -> None:
    """Write `bundle` to `path`, mode 0600, via a temporary beside it (never half a file)."""
    write_atomic(path, to_bytes(bundle))


def read(path: Path) -> Bundle:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}") from None
    return from_bytes(data, str(path))
