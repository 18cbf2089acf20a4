"""One target's share of a run: every local snapshot it lacks (oldest first), each verified
where stored with its manifest and restore bundle beside it, then the target's rotation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from k3s_backup.backup.context import RunContext, file_sha256
from k3s_backup.backup.run_plan import lacking, stored_form, stored_name, target_rotation
from k3s_backup.backup.unchecked import UncheckedSnapshot
from k3s_backup.catalogue import recovery_key
from k3s_backup.catalogue.inventory import (
    Copy,
    local_bundle_path,
    local_copies,
    read_target_manifest,
)
from k3s_backup.catalogue.inventory import target_copies as listed_copies
from k3s_backup.catalogue.storage_form import StoredForm, encrypt_bytes, stored_stream
from k3s_backup.errors import SnapshotError, TargetError
from k3s_backup.formats.snapshot import check_snapshot
from k3s_backup.plumbing.plan import apply
from k3s_backup.plumbing.progress import TransferBar
from k3s_backup.plumbing.signals import safe_point
from k3s_backup.plumbing.streams import MeteredReader
from k3s_backup.policy import naming
from k3s_backup.targets.base import CopyLocked, Digest, Target, final_of_temp, put_bytes


@dataclass
class TargetResult:
    ok: bool
    shipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # copies rotation would remove that S3 Object Lock keeps: name -> until (UTC ISO 8601;
    # None: a legal hold)
    locked: dict[str, str | None] = field(default_factory=dict)
    copies: int = 0
    bytes: int = 0
    newest: str | None = None  # the newest verified copy there, after this run
    newest_unix: int | None = None
    error: str | None = None
    attempts: int = 1  # more than 1: the target was unreachable, then tried again


def ship(run: RunContext, target: Target, newest: naming.SnapshotName) -> TargetResult:
    """Give `target` every local snapshot it lacks (oldest first), then rotate it."""
    result = TargetResult(ok=False)
    target_config = run.config.target(target.name)
    form = stored_form(target_config)
    _remove_stale_temporaries(run, target, newest.node)
    listed = listed_copies(target, run.config.cluster_name)
    bundled = {c.name.filename for c in listed if c.has_bundle}
    local = local_copies(run.config.snapshot_dir, run.config.cluster_name)
    gets = what_it_gets(run, target, listed, [c.name for c in local], newest)
    for copy in local:
        name = stored_name(copy.name, form)
        if copy.name in gets:
            _checked_first(run, copy.name)
            _ship_one(run, target, copy.name, form)
            result.shipped.append(name)
            verb = "Copied" if copy.name == newest else "Caught up"
            run.report.info(f"{verb} {name} to {target.name}: SHA-256 verified")
        _ship_bundle(run, target, copy.name, name, form, bundled)
    with run.phases.timed("rotate"):
        rotation = target_rotation(run, target_config, run.target_copies(target), newest)
        apply(rotation.steps(target), False, run.env.environ, run.report.info)
    result.removed = [name.filename for name in rotation.removed]
    result.locked = {
        held.name.filename: held.until.isoformat() if held.until else None
        for held in rotation.locked
    }
    run.warn_others(target.name)
    kept = listed_copies(target, run.config.cluster_name)
    result.copies, result.bytes = len(kept), sum(c.size for c in kept)
    verified = rotation.newest_kept(newest.node, kept)
    if verified:
        result.newest, result.newest_unix = verified.filename, verified.unix
    result.ok = True
    return result


def what_it_gets(
    run: RunContext,
    target: Target,
    listed: list[Copy],
    local: list[naming.SnapshotName],
    new: naming.SnapshotName,
) -> list[naming.SnapshotName]:
    """What `target`, holding `listed`, gets of the `local` snapshots and the run's `new` one
    (run_plan.lacking): each it does not hold authenticated, if still valid here."""
    present = {c.name.filename for c in listed if c.has_manifest}
    return lacking(
        local,
        new,
        stored_form(run.config.target(target.name)),
        lambda stored: _holds(run, target, stored, stored in present),
        lambda name: _still_valid(run, name),
    )


def _between_chunks(bar: TransferBar) -> Callable[[int], None]:
    """After each chunk read for an upload: the bar, and a safe point for a signal."""

    def advance(size: int) -> None:
        bar.advance(size)
        safe_point()

    return advance


def _bundle_sha256(run: RunContext, name: naming.SnapshotName) -> str:
    path = local_bundle_path(run.config.state_dir, name.filename)
    return file_sha256(path) if path.is_file() else ""


def _checked_first(run: RunContext, name: naming.SnapshotName) -> None:
    """Nothing is published before this run's snapshot is checked: when another copy goes
    first (a target catching up), it is checked on its own before it."""
    if run.unchecked is not None and run.unchecked.name != name:
        run.unchecked.check_alone()


def _plain_read(
    run: RunContext, name: naming.SnapshotName, as_is: bool
) -> tuple[UncheckedSnapshot | None, int, str | None, Digest]:
    """How the read of a local snapshot is checked: (this run's snapshot, checked as it is
    read, if this is its first read; its size; the digest its plain bytes must have as they
    are encoded; the digest a copy of the file as it is must have where stored)."""
    unchecked = run.unchecked if run.unchecked is not None and run.unchecked.name == name else None
    if unchecked is not None:
        return unchecked, unchecked.snapshot.size, None, unchecked.sha256 if as_is else None
    local = run.manifests.get(name)
    return None, local.size, None if as_is else local.sha256, local.sha256 if as_is else None


def _ship_one(run: RunContext, target: Target, name: naming.SnapshotName, form: StoredForm) -> str:
    """Encode, upload and verify one copy and its manifest; the stored name."""
    stored = stored_name(name, form)
    as_is = stored == name.filename  # the local file itself: its digest is known
    unchecked, size, expect, digest = _plain_read(run, name, as_is)
    started = time.monotonic()
    try:
        with (
            (run.config.snapshot_dir / name.filename).open("rb") as plain,
            TransferBar(run.env, f"{stored} to {target.name}", size) as bar,
        ):
            source = plain if unchecked is None else unchecked.reading(plain)
            reader = MeteredReader(source, _between_chunks(bar))  # progress in snapshot bytes
            with stored_stream(reader, size, form, name.suffix, name.filename, expect) as stream:
                verified = target.put(stored, stream, digest)
            done = time.monotonic()
    finally:
        if unchecked is not None:  # a bad snapshot raises here, whatever the put made of it
            unchecked.settle()
    local = run.manifests.get(name)
    manifest = replace(
        local,
        name=stored,
        size=verified.size,
        sha256=verified.sha256,
        compression=form.effective_compression(name.suffix),
        encryption=form.encryption,
        snapshot=name.filename,
        plain_size=local.size,
        plain_sha256=local.sha256,
        bundle_sha256=_bundle_sha256(run, name),
    )
    if run.recovery_key is not None:
        manifest = recovery_key.sign(manifest, run.recovery_key)
    put_bytes(target, naming.manifest_name(manifest.name), manifest.to_json())
    drained = reader.drained_at or done
    run.phases.add("upload", drained - started)
    run.phases.add("verify", done - drained)
    return manifest.name


def _holds(run: RunContext, target: Target, stored: str, listed: bool) -> bool:
    """Whether `target` holds our verified copy `stored`: listed with a manifest that this
    cluster's key authenticates. A manifest planted for a name we have yet to ship (or one
    made before copies were authenticated) does not count: the copy is shipped again."""
    if not listed or run.recovery_key is None:
        return listed
    try:
        manifest = read_target_manifest(target, stored)
    except TargetError:
        manifest = None
    if (
        manifest is not None
        and manifest.name == stored
        and recovery_key.is_authentic(manifest, run.recovery_key)
    ):
        return True
    run.report.warn(f"{stored} on {target.name} does not authenticate: shipping it again")
    return False


def _remove_stale_temporaries(run: RunContext, target: Target, node: str) -> None:
    """Remove the temporary uploads a killed run of this node left (a whole snapshot's
    worth of space each). Only this node's: we hold its lock, so none is in progress, while
    another node sharing the directory may be uploading right now."""
    cluster = run.config.cluster_name
    for stored in target.list():
        final = final_of_temp(stored.name)
        if final is None:
            continue
        snapshot = naming.snapshot_of_sidecar(cluster, final) or final
        parsed = naming.parse(cluster, snapshot)
        if parsed is not None and parsed.node == node:
            try:
                target.delete(stored.name)
            except CopyLocked as exc:  # a bucket's default retention locked it
                run.report.info(f"{exc}; left there, no final name")
                continue
            run.report.info(f"Removed {stored.name} on {target.name}, left by a killed run")


def _ship_bundle(
    run: RunContext,
    target: Target,
    name: naming.SnapshotName,
    stored: str,
    form: StoredForm,
    bundled: set[str],
) -> None:
    """The restore bundle beside the copy, never in clear when it can be helped: encrypted
    to the target's age recipients, else to the recovery key's age identity."""
    path = local_bundle_path(run.config.state_dir, name.filename)
    if stored in bundled or not path.is_file():
        return
    _checked_first(run, name)
    body = path.read_bytes()
    if form.recipients:
        body = encrypt_bytes(body, form.recipients)
    elif run.recovery_key is not None:
        recipient = str(recovery_key.age_identity(run.recovery_key).to_public())
        body = encrypt_bytes(body, (recipient,))
    put_bytes(target, naming.bundle_name(stored), body)


def _still_valid(run: RunContext, name: naming.SnapshotName) -> bool:
    try:
        check_snapshot(run.config.snapshot_dir / name.filename)
    except SnapshotError as exc:
        run.report.warn(f"not shipping {name.filename}: {exc}")
        return False
    return True
