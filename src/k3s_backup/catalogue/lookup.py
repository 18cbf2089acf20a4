"""Which copy a user means: every copy of ours at the chosen locations (this node first, then the
targets as configured), and the snapshot named by `latest`, a file name in any stored form, or a
unique prefix. Shared by fetch, restore, drill and the snapshot opener (catalogue/opening.py)."""

from __future__ import annotations

from pathlib import Path

from k3s_backup.catalogue.inventory import (
    LOCAL,
    Copy,
    local_copies,
    local_manifests,
    target_copies,
    with_identities,
)
from k3s_backup.catalogue.storage_form import Identities, read_identities
from k3s_backup.config import Config
from k3s_backup.errors import BackupError, ExitCode, SnapshotError
from k3s_backup.report import Reporter
from k3s_backup.targets.base import Target
from k3s_backup.targets.retry import on_target

LATEST = "latest"


class ChoiceError(BackupError):
    """The name given matches no snapshot, or more than one: a usage error."""

    exit_code = ExitCode.USAGE


def _locations(config: Config, source: str | None) -> list[str]:
    """Where to look, in order of preference: this node first, then targets as configured."""
    if source is None:
        return [LOCAL, *(t.name for t in config.targets)]
    if source != LOCAL:
        config.target(source)  # a ConfigError naming the configured targets if unknown
    return [source]


def find_copies(
    config: Config, reporter: Reporter, source: str | None, identities: bool = False
) -> tuple[list[Copy], list[str]]:
    """Every copy of ours at the chosen locations (on a target, only those with a manifest),
    and the locations that could not be read; with `identities`, each with the cluster
    identity its manifest records (one more read per copy on a target)."""
    found: list[Copy] = []
    unreadable: list[str] = []
    manifests = local_manifests(config)
    local = local_copies(config.snapshot_dir, config.cluster_name)
    if identities:
        local = manifests.with_identities(local)
    for location in _locations(config, source):
        if location == LOCAL:
            found += local
            continue

        def listed(target: Target) -> list[Copy]:
            copies = [c for c in target_copies(target, config.cluster_name) if c.has_manifest]
            return with_identities(target, copies, manifests.known(local)) if identities else copies

        try:
            found += on_target(config.target(location), config.cluster_name, reporter, listed)
        except BackupError as exc:
            reporter.warn(f"cannot list {location}: {exc}")
            unreadable.append(location)
    return found, unreadable


def _newest_first(copies: list[Copy]) -> list[str]:
    newest = {c.snapshot: c.name for c in copies}  # one entry per snapshot, any form
    return [base for base, _ in sorted(newest.items(), key=lambda item: item[1], reverse=True)]


def choose(copies: list[Copy], wanted: str) -> str:
    """The snapshot meant by `latest`, a file name in any stored form, or a unique prefix."""
    names = _newest_first(copies)
    if not names:
        raise SnapshotError("no snapshot of ours found at any location: nothing to restore")
    if wanted == LATEST:
        return names[0]
    exact = {c.snapshot for c in copies if wanted in (c.snapshot, c.name.filename)}
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


def copies_of(copies: list[Copy], snapshot: str) -> list[Copy]:
    return [c for c in copies if c.snapshot == snapshot]  # already in order of preference


def load_identities(identity: Path | None) -> Identities:
    """The age private keys of `--identity FILE`, needed only for encrypted copies."""
    return read_identities(identity) if identity is not None else []
