"""`k3s-backup run`: snapshot, ship to every target (catching up), verify, rotate, report."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import click

from k3s_backup.catalogue import bundle, recovery_key
from k3s_backup.catalogue.clusters import new_chain_message, others_warnings, split_by_cluster
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
from k3s_backup.catalogue.manifest import Manifest, for_snapshot
from k3s_backup.catalogue.rotation import plan, remove_from_target, remove_local, rules_of
from k3s_backup.catalogue.storage_form import StoredForm, encrypt_bytes, stored_stream
from k3s_backup.cli_options import NEW_CLUSTER_OPTION, Context, epilog, pass_context
from k3s_backup.config import Config, TargetConfig
from k3s_backup.environment import Environment
from k3s_backup.errors import (
    BackupError,
    ExitCode,
    Interrupted,
    SnapshotError,
    TargetError,
    TargetUnreachable,
)
from k3s_backup.formats.cluster_identity import read_identity
from k3s_backup.formats.snapshot import check_snapshot
from k3s_backup.monitoring.hooks import Hooks
from k3s_backup.monitoring.metrics import publish_metrics
from k3s_backup.plumbing.lock import exclusive_run
from k3s_backup.plumbing.progress import TransferBar
from k3s_backup.plumbing.signals import SignalGuard, safe_point, signals_deferred
from k3s_backup.plumbing.streams import MeteredReader, sha256_stream
from k3s_backup.policy import naming
from k3s_backup.policy.identity import ClusterIdentity, chain_conflict, describe
from k3s_backup.policy.offsite import HeldThrough, only_here, protect_unshipped, remembered
from k3s_backup.policy.retention import GfsRules
from k3s_backup.report import Reporter, human_size, plural
from k3s_backup.sources.base import LocalSnapshot, Source
from k3s_backup.sources.factory import open_source
from k3s_backup.state import read_state, record_run
from k3s_backup.targets.base import CopyLocked, Target, final_of_temp, put_bytes
from k3s_backup.targets.factory import open_target


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


PHASES = ("snapshot", "upload", "verify", "rotate")


class Phases:
    """Seconds spent in each phase of a run, summed over targets. `upload` includes encoding
    (it happens while uploading); `verify` is the time a target's `put` takes after the
    snapshot was read to its end (the last bytes sent, re-hash where stored, rename).
    Connecting, listing and the small manifest and bundle uploads count only in the total."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.add(phase, time.monotonic() - started)

    def rounded(self) -> dict[str, float]:
        return {phase: round(seconds, 3) for phase, seconds in self.seconds.items()}


SOURCE_LABELS = {
    "k3s": "with `k3s etcd-snapshot save`",
    "etcd": "from the etcd Maintenance API",
    "sqlite": "from K3s's SQLite datastore with SQLite's backup API",
}


def make_source(config: Config, env: Environment) -> Source:
    return open_source(config, env.environ)


def _manifest_of(
    snapshot: LocalSnapshot, source_kind: str, identity: ClusterIdentity | None
) -> Manifest:
    if snapshot.name.suffix == ".zip":  # the manifest describes the stored file, not its content
        digest = _file_sha256(snapshot.path)
        size = snapshot.path.stat().st_size
    else:
        digest, size = snapshot.check.sha256, snapshot.check.size
    return for_snapshot(snapshot.name, source_kind, size, digest).with_identity(identity)


def _file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return sha256_stream(stream)


def stored_form(target_config: TargetConfig) -> StoredForm:
    return StoredForm(
        compression=target_config.compression,
        zstd_level=target_config.zstd_level,
        recipients=tuple(target_config.age_recipients),
    )


def stored_name(name: naming.SnapshotName, form: StoredForm) -> str:
    """The name of a local snapshot's copy in a target's stored form (`.zst`, `.age`, ...)."""
    return name.filename + form.suffix(name.suffix)


def _between_chunks(bar: TransferBar) -> Callable[[int], None]:
    """After each chunk read for an upload: the bar, and a safe point for a signal."""

    def advance(size: int) -> None:
        bar.advance(size)
        safe_point()

    return advance


def _without_name(name: str, exc: BaseException) -> str:
    """A target's error where the message already says `target NAME`: a backend's message
    starts with its name, for the commands that print it bare."""
    return str(exc).removeprefix(f"{name}: ")


class NewChainRefused(BackupError):
    """This node's cluster is not the one whose copies are there: no backup is taken."""


class Run:
    def __init__(
        self, config: Config, env: Environment, reporter: Reporter, new_cluster: bool = False
    ) -> None:
        self.config = config
        self.env = env
        self.report = reporter
        self.new_cluster = new_cluster  # --new-cluster: start a chain beside another cluster's
        self.source = make_source(config, env)
        self.manifests = LocalManifests(config.state_dir, config.snapshot_dir, self.source.kind)
        self.phases = Phases()
        self.identity: ClusterIdentity | None = None  # of this run's snapshot
        self.recovery_key = self._recovery_key()
        self.others: dict[str, list[Copy]] = {}  # location -> copies of other identities kept
        self.held_through: HeldThrough = {}  # what each target holds (policy.offsite)
        self.doing = "the snapshot"  # the phase an interruption is reported in

    def _recovery_key(self) -> bytes | None:
        """The key that authenticates what this run ships; without one, copies ship
        unauthenticated (a restore then needs --allow-unauthenticated), loudly."""
        try:
            key = recovery_key.load(self.config.recovery_key_file)
        except recovery_key.RecoveryKeyError as exc:
            self.report.warn(f"copies ship UNAUTHENTICATED: {exc}")
            return None
        if key is None:
            self.report.warn(
                f"copies ship UNAUTHENTICATED and their restore bundles in clear: no recovery key"
                f" at {self.config.recovery_key_file}; create it with `k3s-backup recovery-key"
                " create` and keep it off this node"
            )
        return key

    def _bundle_sha256(self, name: naming.SnapshotName) -> str:
        path = local_bundle_path(self.config.state_dir, name.filename)
        return _file_sha256(path) if path.is_file() else ""

    def _ship_one(
        self, target: Target, name: naming.SnapshotName, local: Manifest, form: StoredForm
    ) -> str:
        """Encode, upload and verify one copy and its manifest; the stored name."""
        stored = stored_name(name, form)
        as_is = stored == name.filename  # the local file itself: its digest is known
        started = time.monotonic()
        with (
            (self.config.snapshot_dir / name.filename).open("rb") as plain,
            TransferBar(self.env, f"{stored} to {target.name}", local.size) as bar,
        ):
            reader = MeteredReader(plain, _between_chunks(bar))  # progress in snapshot bytes
            # an encoded form is checked against the plain bytes as they are read; the local
            # file itself is checked where stored, against local.sha256
            expect = None if as_is else local.sha256
            with stored_stream(
                reader, local.size, form, name.suffix, name.filename, expect
            ) as stream:
                verified = target.put(stored, stream, local.sha256 if as_is else None)
            done = time.monotonic()
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
            bundle_sha256=self._bundle_sha256(name),
        )
        if self.recovery_key is not None:
            manifest = recovery_key.sign(manifest, self.recovery_key)
        put_bytes(target, naming.manifest_name(manifest.name), manifest.to_json())
        drained = reader.drained_at or done
        self.phases.add("upload", drained - started)
        self.phases.add("verify", done - drained)
        return manifest.name

    def take_snapshot(self) -> LocalSnapshot:
        prefix = naming.snapshot_prefix(self.config.cluster_name, self.env.now())
        self.report.info(f"Creating snapshot {prefix} ({SOURCE_LABELS[self.source.kind]})")
        snapshot = self.source.take(prefix)
        self.identity = read_identity(snapshot.path, self.config.state_dir)
        self.manifests.save(_manifest_of(snapshot, self.source.kind, self.identity))
        self.save_bundle(snapshot.name)
        checked = "integrity_check ok" if snapshot.name.suffix == ".db" else "SHA-256 trailer valid"
        detail = f" {snapshot.detail}" if snapshot.detail else ""
        self.report.info(
            f"Snapshot {snapshot.name.filename} saved and checked"
            f" ({human_size(snapshot.check.size)}, {checked}){detail}; {describe(self.identity)}"
        )
        return snapshot

    def local_copies(self) -> list[Copy]:
        """This cluster's local snapshots, each with its identity."""
        copies = local_copies(self.config.snapshot_dir, self.config.cluster_name)
        return self.manifests.with_identities(copies)

    def target_copies(self, target: Target) -> list[Copy]:
        known = self.manifests.known(self.local_copies())
        return with_identities(target, target_copies(target, self.config.cluster_name), known)

    def _owned(self, location: str, copies: list[Copy]) -> list[Copy]:
        """The copies this run's cluster owns (and may rotate); the others are kept and named."""
        owned, others = split_by_cluster(copies, self.identity)
        self.others[location] = others
        return owned

    def refuse_new_chain(self, snapshot: naming.SnapshotName, held: dict[str, list[Copy]]) -> None:
        """NewChainRefused if a location holds copies of this cluster name of another (or an
        unknown) identity and none of this snapshot's: a replacement node must restore, not
        start backing up its empty cluster over the lost one's copies. The snapshot of this
        run is removed again: it is of the cluster that must not be backed up yet."""
        if self.identity is None or self.new_cluster:
            return
        local = [c for c in self.local_copies() if c.name != snapshot]
        conflicts = {
            location: copies
            for location, copies in [(LOCAL, local), *held.items()]
            if chain_conflict(self.identity, [c.identity for c in copies])
        }
        if not conflicts:
            return
        self.source.delete(snapshot.filename)
        self.manifests.forget(snapshot.filename)
        raise NewChainRefused(new_chain_message(self.config.cluster_name, self.identity, conflicts))

    def ship(self, target: Target, newest: naming.SnapshotName) -> TargetResult:
        """Give `target` every local snapshot it lacks (oldest first), then rotate it."""
        result = TargetResult(ok=False)
        target_config = self.config.target(target.name)
        form = stored_form(target_config)
        self._remove_stale_temporaries(target, newest.node)
        listed = target_copies(target, self.config.cluster_name)
        present = {c.name.filename for c in listed if c.has_manifest}
        bundled = {c.name.filename for c in listed if c.has_bundle}
        for copy in local_copies(self.config.snapshot_dir, self.config.cluster_name):
            name = stored_name(copy.name, form)
            if not self._holds(target, name, name in present):
                if copy.name != newest and not self._still_valid(copy.name):
                    continue
                self._ship_one(target, copy.name, self.manifests.get(copy.name), form)
                result.shipped.append(name)
                verb = "Copied" if copy.name == newest else "Caught up"
                self.report.info(f"{verb} {name} to {target.name}: SHA-256 verified")
            self._ship_bundle(target, copy.name, name, form, bundled)
        with self.phases.timed("rotate"):
            copies = self._owned(target.name, self.target_copies(target))
            keep = frozenset({stored_name(newest, form)})
            retention = plan(copies, rules_of(target_config), keep)
            locked = remove_from_target(target, retention.remove)
        for held in locked:
            self.report.info(held.describe(target.name))
        gone = [n for n in retention.remove if n not in {held.name for held in locked}]
        result.removed = [n.filename for n in gone]
        result.locked = {h.name.filename: h.until.isoformat() if h.until else None for h in locked}
        for removed in gone:
            self.report.info(f"Rotated {removed.filename} off {target.name}")
        self._warn_others(target.name)
        kept = target_copies(target, self.config.cluster_name)
        result.copies, result.bytes = len(kept), sum(c.size for c in kept)
        # This node's newest verified copy (a manifest is written after verifying), never
        # another server's or another cluster's: what this node's local rotation relies on.
        owned = {c.name for c in copies if c.name not in retention.remove}
        verified = [c for c in kept if c.has_manifest and c.name in owned]
        verified = [c for c in verified if c.name.node == newest.node]
        if verified:
            result.newest, result.newest_unix = verified[-1].name.filename, verified[-1].name.unix
        result.ok = True
        return result

    def _holds(self, target: Target, stored: str, listed: bool) -> bool:
        """Whether `target` holds our verified copy `stored`: listed with a manifest that this
        cluster's key authenticates. A manifest planted for a name we have yet to ship (or one
        made before copies were authenticated) does not count: the copy is shipped again."""
        if not listed or self.recovery_key is None:
            return listed
        try:
            manifest = read_target_manifest(target, stored)
        except TargetError:
            manifest = None
        if (
            manifest is not None
            and manifest.name == stored
            and recovery_key.is_authentic(manifest, self.recovery_key)
        ):
            return True
        self.report.warn(f"{stored} on {target.name} does not authenticate: shipping it again")
        return False

    def _warn_others(self, location: str) -> None:
        for warning in others_warnings(self.config.cluster_name, location, self.others[location]):
            self.report.warn(warning)

    def _remove_stale_temporaries(self, target: Target, node: str) -> None:
        """Remove the temporary uploads a killed run of this node left (a whole snapshot's
        worth of space each). Only this node's: we hold its lock, so none is in progress, while
        another node sharing the directory may be uploading right now."""
        cluster = self.config.cluster_name
        for stored in target.list():
            final = final_of_temp(stored.name)
            if final is None:
                continue
            snapshot = (
                naming.snapshot_of_manifest(cluster, final)
                or naming.snapshot_of_bundle(cluster, final)
                or final
            )
            parsed = naming.parse(cluster, snapshot)
            if parsed is not None and parsed.node == node:
                try:
                    target.delete(stored.name)
                except CopyLocked as exc:  # a bucket's default retention locked it
                    self.report.info(f"{exc}; left there, no final name")
                    continue
                self.report.info(f"Removed {stored.name} on {target.name}, left by a killed run")

    def save_bundle(self, name: naming.SnapshotName) -> None:
        """Keep the restore bundle (token, K3s config) under state_dir; a failure only warns:
        the snapshot itself is good, but a rebuilt node will need the token from elsewhere."""
        try:
            made = bundle.collect(
                snapshot=name.filename,
                node=name.node,
                created=self.env.now().astimezone().isoformat(),
                data_dir=self.config.k3s.data_dir,
                config_dir=self.config.k3s.config_dir,
                k3s_bin=self.config.k3s.bin,
                environ=self.env.environ,
            )
            bundle.write(made, local_bundle_path(self.config.state_dir, name.filename))
        except (bundle.BundleError, OSError) as exc:
            self.report.warn(
                f"no restore bundle for {name.filename}: {exc}; keep a copy of"
                f" {bundle.token_path(self.config.k3s.data_dir)} elsewhere"
            )

    def _ship_bundle(
        self,
        target: Target,
        name: naming.SnapshotName,
        stored: str,
        form: StoredForm,
        bundled: set[str],
    ) -> None:
        """The restore bundle beside the copy, never in clear when it can be helped: encrypted
        to the target's age recipients, else to the recovery key's age identity."""
        path = local_bundle_path(self.config.state_dir, name.filename)
        if stored in bundled or not path.is_file():
            return
        body = path.read_bytes()
        if form.recipients:
            body = encrypt_bytes(body, form.recipients)
        elif self.recovery_key is not None:
            recipient = str(recovery_key.age_identity(self.recovery_key).to_public())
            body = encrypt_bytes(body, (recipient,))
        put_bytes(target, naming.bundle_name(stored), body)

    def _still_valid(self, name: naming.SnapshotName) -> bool:
        try:
            check_snapshot(self.config.snapshot_dir / name.filename)
        except SnapshotError as exc:
            self.report.warn(f"not shipping {name.filename}: {exc}")
            return False
        return True

    def ship_everywhere(self, newest: naming.SnapshotName) -> dict[str, TargetResult]:
        """Open every target and see what it holds (NewChainRefused before anything is
        shipped), then ship to each over that first connection. A signal meanwhile waits for
        a chunk's end or for every connection to be closed (plumbing/signals.py)."""
        with signals_deferred(), ExitStack() as stack:
            opened: dict[str, Target] = {}
            held: dict[str, list[Copy]] = {}
            failures: dict[str, BackupError] = {}
            for target_config in self.config.targets:
                target = stack.enter_context(
                    open_target(target_config, self.config.cluster_name, self.config.schedule)
                )
                try:
                    held[target.name] = self.target_copies(target)
                    opened[target.name] = target
                except BackupError as exc:  # the attempt of ship_with_retries that failed
                    failures[target.name] = exc
            self.refuse_new_chain(newest, held)
            return {
                t.name: self.ship_with_retries(t, newest, opened.get(t.name), failures.get(t.name))
                for t in self.config.targets
            }

    def ship_with_retries(
        self,
        target_config: TargetConfig,
        newest: naming.SnapshotName,
        first: Target | None = None,
        first_failure: BackupError | None = None,
    ) -> TargetResult:
        """Ship to one target; when its link fails, wait and start over on a new connection
        (`ship` catches up and clears its own temporaries, so a new attempt resumes cleanly).
        A refusal by the target itself (key, permission, full disk) is not tried again. The
        first attempt uses `first`, already open, or is `first_failure`, already met."""
        name, attempts = target_config.name, target_config.retries + 1
        self.doing = f"upload to {name}"
        for attempt in range(1, attempts + 1):
            try:
                safe_point()  # a signal noted during the wait before this attempt
                if attempt == 1 and first_failure is not None:
                    raise first_failure
                if attempt == 1 and first is not None:
                    return replace(self.ship(first, newest), attempts=attempt)
                with open_target(
                    target_config, self.config.cluster_name, self.config.schedule
                ) as target:
                    return replace(self.ship(target, newest), attempts=attempt)
            except TargetUnreachable as exc:
                if attempt == attempts:
                    return self._target_failed(name, exc, attempt)
                delay = target_config.retry_delay
                self.report.warn(
                    f"target {name}: {_without_name(name, exc)}; trying again in {delay:g} s"
                    f" (attempt {attempt + 1} of {attempts})"
                )
                self.env.sleep(delay)
            except BackupError as exc:
                return self._target_failed(name, exc, attempt)
            except Exception as exc:  # a bug or an unforeseen fault: this target alone fails
                return self._target_failed(name, unexpected(exc), attempt)
        raise AssertionError("unreachable: the last attempt returns")

    def _target_failed(self, name: str, exc: BackupError, attempts: int) -> TargetResult:
        tried = f" (after {attempts} attempts)" if attempts > 1 else ""
        error = _without_name(name, exc)
        self.report.error(f"target {name} failed{tried}: {error}")
        return TargetResult(ok=False, error=error, attempts=attempts)

    def keep_unshipped(
        self, results: dict[str, TargetResult], newest: naming.SnapshotName
    ) -> frozenset[str]:
        """The local snapshots rotation keeps beyond keep_local because a target lacks them;
        the oldest of them go, loudly, only when the next snapshot would not fit otherwise."""
        state, cluster = read_state(self.config.state_dir), self.config.cluster_name
        self.held_through = {
            name: naming.parse(cluster, r.newest or "")
            if r.ok
            else remembered(state, name, cluster)
            for name, r in results.items()
        }
        copies = local_copies(self.config.snapshot_dir, self.config.cluster_name)
        sizes = {c.name.filename: c.size for c in copies}
        free = shutil.disk_usage(self.config.snapshot_dir).free
        decision = protect_unshipped(
            [c.name for c in copies],
            sizes,
            GfsRules(last=self.config.keep_local),
            self.held_through,
            free=free,
            need=sizes.get(newest.filename, 0),
        )
        lacking = [n for n, r in results.items() if not r.ok] or list(results)
        for name in decision.dropped:
            self.report.warn(
                f"deleting local snapshot {name.filename} although {', '.join(lacking)} never"
                f" received it: only {human_size(free)} free in {self.config.snapshot_dir}, and"
                f" the next snapshot needs {human_size(sizes.get(newest.filename, 0))}"
            )
        if decision.keep:
            self.report.info(
                f"Keeping {len(decision.keep)} local snapshot(s) beyond keep_local ="
                f" {self.config.keep_local} until {', '.join(lacking)} has them"
            )
        return decision.keep

    def rotate_local_safely(
        self, newest: naming.SnapshotName, results: dict[str, TargetResult]
    ) -> str | None:
        """Local rotation (keeping what a target still lacks), whose failure must not cost the
        run its report and state record; what went wrong, or None."""
        try:
            self.rotate_local(newest, self.keep_unshipped(results, newest))
        except BackupError as exc:
            problem = f"local rotation failed: {exc}"
        except Exception as exc:  # a bug or an unforeseen fault: reported, never a traceback
            problem = f"local rotation failed: {unexpected(exc)}"
        else:
            return None
        self.report.error(problem)
        return problem

    def rotate_local(
        self, newest: naming.SnapshotName, protect: frozenset[str] = frozenset()
    ) -> None:
        with self.phases.timed("rotate"):
            copies = self._owned(LOCAL, self.local_copies())
            rules = GfsRules(last=self.config.keep_local)
            retention = plan(copies, rules, frozenset({newest.filename}) | protect)
            remove_local(retention.remove, self.source.delete, self.report.warn)
        for name in retention.remove:
            self.manifests.forget(name.filename)
            self.report.info(f"Rotated local snapshot {name.filename}")
        self._warn_others(LOCAL)

    def local_summary(self) -> dict[str, Any]:
        local = local_copies(self.config.snapshot_dir, self.config.cluster_name)
        newest = local[-1].name if local else None
        return {
            "copies": len(local),
            "only_here": len(only_here([c.name for c in local], self.held_through)),
            "bytes": sum(c.size for c in local),
            "newest": newest.filename if newest else None,
            "newest_unix": newest.unix if newest else None,
        }

    def summarize(self, results: dict[str, TargetResult], local: dict[str, Any]) -> None:
        self.report.info(
            f"Local snapshots: {local['copies']} ({human_size(local['bytes'])})"
            f" in {self.config.snapshot_dir}, {local['only_here']} only on this node"
        )
        for name, result in results.items():
            if result.ok:
                self.report.info(
                    f"Target {name}: {plural(result.copies, 'copy')} ({human_size(result.bytes)})"
                )
            else:
                self.report.info(f"Target {name}: FAILED (the error above)")  # said once


def unexpected(exc: Exception) -> BackupError:
    """An exception nothing foresaw, as a message that names it (never a traceback)."""
    detail: object = exc
    if isinstance(exc, OSError) and exc.strerror:
        detail = f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return BackupError(f"unexpected {type(exc).__name__}: {detail}")


def run_backup(
    config: Config, env: Environment, json_out: TextIO | None = None, new_cluster: bool = False
) -> ExitCode:
    """The whole run; with `json_out`, the run report goes there as JSON instead of the
    progress lines on stdout (they are still logged). `new_cluster`: start this cluster's
    chain even where another cluster of this name has copies (`run --new-cluster`)."""
    reporter = Reporter(env, config.log_file, echo_info=json_out is None)
    if not config.targets:
        reporter.error(
            "no [[targets]] configured: a backup that never leaves this node is lost with its"
            " disk; add a target (see `k3s-backup config init`)"
        )
        return ExitCode.USAGE
    with exclusive_run(config.state_dir), SignalGuard():
        code, record = _monitored_run(config, env, reporter, new_cluster)
    if json_out is not None:
        json_out.write(json.dumps(record, indent=2) + "\n")
    return code


def _monitored_run(
    config: Config, env: Environment, reporter: Reporter, new_cluster: bool
) -> tuple[ExitCode, dict[str, Any]]:
    """Pings around the run, metrics and webhooks after it; none of them changes the outcome."""
    hooks = Hooks(config.notify, config.cluster_name, reporter)
    hooks.start()
    try:
        code, record = _locked_run(config, env, reporter, new_cluster)
    except Exception as exc:  # a crash is a failure the monitors must hear about
        hooks.finish({"outcome": "error", "exit_code": 1, "error": f"crashed: {exc!r}"})
        raise
    publish_metrics(config, env, reporter)
    hooks.finish(record)
    return code, record


def _locked_run(
    config: Config, env: Environment, reporter: Reporter, new_cluster: bool
) -> tuple[ExitCode, dict[str, Any]]:
    started, clock = env.now(), time.monotonic()
    record: dict[str, Any] = {
        "cluster": config.cluster_name,
        "started": started.isoformat(),
        "snapshot": None,
        "targets": {},
        "local": None,
        "error": None,
    }
    run = Run(config, env, reporter, new_cluster)
    reporter.info(f"Starting etcd backup of cluster {config.cluster_name}")
    try:
        with run.phases.timed("snapshot"):
            snapshot = run.take_snapshot()
    except (SnapshotError, OSError) as exc:  # OSError: its manifest could not be recorded
        reason = unexpected(exc) if isinstance(exc, OSError) else exc
        record["error"] = f"snapshot failed, nothing shipped: {reason}"
        reporter.error(record["error"])
        return _finish(config, env, record, clock, run.phases, ExitCode.FAILED, reporter)
    except Interrupted as stop:
        return _interrupted(run, record, stop, clock)
    record["snapshot"] = {
        "name": snapshot.name.filename,
        "size": snapshot.check.size,
        "cluster_uid": run.identity.uid if run.identity else None,
        "objects": run.identity.objects if run.identity else None,
    }
    try:
        results = run.ship_everywhere(snapshot.name)
        run.doing = "local rotation"
        rotation_problem = run.rotate_local_safely(snapshot.name, results)
    except NewChainRefused as exc:
        record["snapshot"], record["error"] = None, str(exc)
        reporter.error(record["error"])
        return _finish(config, env, record, clock, run.phases, ExitCode.FAILED, reporter)
    except Interrupted as stop:
        return _interrupted(run, record, stop, clock)
    record["local"] = run.local_summary()
    run.summarize(results, record["local"])
    record["targets"] = {name: asdict(r) for name, r in results.items()}
    failed = [name for name, r in results.items() if not r.ok]
    if failed or rotation_problem:
        what = [f"{', '.join(failed)} failed"] if failed else []
        what += [rotation_problem] if rotation_problem else []
        record["error"] = (
            f"backup PARTIAL: snapshot {snapshot.name.filename} kept locally, but {'; '.join(what)}"
        )
        reporter.error(record["error"])
        return _finish(config, env, record, clock, run.phases, ExitCode.PARTIAL, reporter)
    reporter.info(
        f"Backup complete: {snapshot.name.filename} on {len(results)} target(s), verified"
    )
    return _finish(config, env, record, clock, run.phases, ExitCode.OK, reporter)


def _interrupted(
    run: Run, record: dict[str, Any], stop: Interrupted, clock: float
) -> tuple[ExitCode, dict[str, Any]]:
    """One line naming the signal and the phase, on stderr, in the log and the state file;
    the cleanups (a temporary upload removed) already ran on the way here."""
    snapshot = (record["snapshot"] or {}).get("name")
    kept = f"snapshot {snapshot} kept locally, the next run catches up" if snapshot else None
    record["error"] = (
        f"interrupted ({stop.signal_name}) during {run.doing}; {kept or 'nothing shipped'}"
    )
    run.report.error(record["error"])
    return _finish(run.config, run.env, record, clock, run.phases, stop.exit_code, run.report)


def _finish(
    config: Config,
    env: Environment,
    record: dict[str, Any],
    clock: float,
    phases: Phases,
    code: ExitCode,
    reporter: Reporter,
) -> tuple[ExitCode, dict[str, Any]]:
    record.update(
        finished=env.now().isoformat(),
        outcome={
            0: "success",
            1: "failed",
            3: "partial",
            130: "interrupted",
            143: "interrupted",
        }.get(int(code), "error"),
        exit_code=int(code),
        duration_seconds=round(time.monotonic() - clock, 3),
        phases=phases.rounded(),
    )
    try:
        record_run(config.state_dir, record)
    except OSError as exc:
        reporter.warn(f"cannot record the run in {config.state_dir}: {exc.strerror}")
    return code, record


@click.command("run", epilog=epilog("run"))
@click.option(
    "--log-only",
    is_flag=True,
    help="Report only to log_file (for schedules): the console gets only what was not logged.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the run report as JSON instead of progress."
)
@NEW_CLUSTER_OPTION
@pass_context
def command(ctx: Context, log_only: bool, as_json: bool, new_cluster: bool) -> int:
    """Snapshot etcd, ship it to every target, verify, rotate, report."""
    env = ctx.env
    json_out = env.stdout if as_json else None
    if log_only:  # what Reporter logs is not also printed (the schedule appends both to the log)
        env = dataclasses.replace(env, stdout=io.StringIO(), stderr=io.StringIO())
    return run_backup(ctx.config(), env, json_out, new_cluster)
