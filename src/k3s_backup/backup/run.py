"""The steps of one run: the snapshot (refused when it would start a second chain of this
cluster's name), shipping to every target with its retries, the summary."""

from __future__ import annotations

from contextlib import ExitStack, suppress
from dataclasses import replace
from functools import partial
from typing import Any

from k3s_backup.backup.connecting import EarlyConnections
from k3s_backup.backup.context import RunContext, file_sha256, unexpected
from k3s_backup.backup.shipping import TargetResult, ship
from k3s_backup.backup.unchecked import SnapshotCheckFailed, UncheckedSnapshot
from k3s_backup.catalogue import bundle
from k3s_backup.catalogue.clusters import new_chain_message
from k3s_backup.catalogue.inventory import LOCAL, Copy, local_bundle_path, local_copies
from k3s_backup.catalogue.manifest import Manifest, for_snapshot
from k3s_backup.config import TargetConfig
from k3s_backup.errors import BackupError, SnapshotError
from k3s_backup.formats.cluster_identity import read_identity
from k3s_backup.formats.etcd_snapshot import SnapshotCheck
from k3s_backup.plumbing.signals import signals_deferred
from k3s_backup.policy import naming
from k3s_backup.policy.identity import ClusterIdentity, chain_conflict, describe
from k3s_backup.policy.offsite import only_here
from k3s_backup.report import human_size, plural
from k3s_backup.sources.base import TakenSnapshot
from k3s_backup.targets.base import Target
from k3s_backup.targets.retry import Retrying, without_name

SOURCE_LABELS = {
    "k3s": "with `k3s etcd-snapshot save`",
    "etcd": "from the etcd Maintenance API",
    "sqlite": "from K3s's SQLite datastore with SQLite's backup API",
}


class NewChainRefused(BackupError):
    """This node's cluster is not the one whose copies are there: no backup is taken."""


def _manifest_of(
    snapshot: TakenSnapshot,
    check: SnapshotCheck,
    source_kind: str,
    identity: ClusterIdentity | None,
) -> Manifest:
    if snapshot.name.suffix == ".zip":  # the manifest describes the stored file, not its content
        digest = file_sha256(snapshot.path)
        size = snapshot.path.stat().st_size
    else:
        digest, size = check.sha256, check.size
    return for_snapshot(snapshot.name, source_kind, size, digest).with_identity(identity)


class Run(RunContext):
    def take_snapshot(self) -> TakenSnapshot:
        """The snapshot, its identity and restore bundle; recorded and said to be checked now,
        or, when its trailer is left to its first reader, then (backup/unchecked.py)."""
        prefix = naming.snapshot_prefix(self.config.cluster_name, self.env.now())
        self.report.info(f"Creating snapshot {prefix} ({SOURCE_LABELS[self.source.kind]})")
        # the bundle's `k3s --version` answers while the snapshot is taken, not after it
        version = bundle.K3sVersion(self.config.k3s.bin, self.env.environ)
        try:
            snapshot = self.source.take(prefix)
            self.identity = read_identity(snapshot.path, self.config.state_dir)
            if snapshot.check is None:
                self.manifests.await_check(snapshot.name, self.identity)
                self.unchecked = UncheckedSnapshot(
                    snapshot, partial(self._record, snapshot), partial(self._announce, snapshot)
                )
            else:
                self._record(snapshot, snapshot.check)
            self.save_bundle(snapshot.name, version)
        finally:
            version.stop()  # the snapshot failed, or a signal came: its answer is not wanted
        if snapshot.check is not None:
            self._announce(snapshot, snapshot.check)
        return snapshot

    def _record(self, snapshot: TakenSnapshot, check: SnapshotCheck) -> None:
        try:
            self.manifests.save(_manifest_of(snapshot, check, self.source.kind, self.identity))
        except OSError as exc:  # as when it is recorded as it is taken: the snapshot fails
            raise SnapshotError(str(unexpected(exc))) from exc

    def _announce(self, snapshot: TakenSnapshot, check: SnapshotCheck) -> None:
        self.unchecked = None
        checked = "integrity_check ok" if snapshot.name.suffix == ".db" else "SHA-256 trailer valid"
        detail = f" {snapshot.detail}" if snapshot.detail else ""
        self.report.info(
            f"Snapshot {snapshot.name.filename} saved and checked"
            f" ({human_size(check.size)}, {checked}){detail}; {describe(self.identity)}"
        )

    def save_bundle(self, name: naming.SnapshotName, version: bundle.K3sVersion) -> None:
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
                version=version,
            )
            bundle.write(made, local_bundle_path(self.config.state_dir, name.filename))
        except (bundle.BundleError, OSError) as exc:
            self.report.warn(
                f"no restore bundle for {name.filename}: {exc}; keep a copy of"
                f" {bundle.token_path(self.config.k3s.data_dir)} elsewhere"
            )

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
        if self.unchecked is not None:  # a bad snapshot is said to be bad, not of another cluster
            self.unchecked.check_alone()
        self.source.delete(snapshot.filename)
        self.manifests.forget(snapshot.filename)
        raise NewChainRefused(new_chain_message(self.config.cluster_name, self.identity, conflicts))

    def ship_everywhere(
        self, newest: naming.SnapshotName, early: EarlyConnections
    ) -> dict[str, TargetResult]:
        """See what every target holds over the connection `early` opened during the
        snapshot (NewChainRefused before anything is shipped), then ship to each over that
        first connection. A signal meanwhile waits for a chunk's end or for every connection
        to be closed (plumbing/signals.py). A snapshot left to its first reader and found bad
        (SnapshotCheckFailed) ends the run: nothing of it, nor anything else, was published."""
        try:
            return self._ship_everywhere(newest, early)
        except SnapshotCheckFailed:
            with suppress(OSError):  # its restore bundle: of no snapshot to restore
                local_bundle_path(self.config.state_dir, newest.filename).unlink(missing_ok=True)
            raise

    def _ship_everywhere(
        self, newest: naming.SnapshotName, early: EarlyConnections
    ) -> dict[str, TargetResult]:
        with signals_deferred(), ExitStack() as stack:
            opened: dict[str, Target] = {}
            held: dict[str, list[Copy]] = {}
            failures: dict[str, BackupError] = {}
            for target_config in self.config.targets:
                target = stack.enter_context(early.take(target_config))
                try:
                    early.check_connected(target_config)
                    held[target.name] = self.target_copies(target)
                    opened[target.name] = target
                except BackupError as exc:  # the attempt of ship_with_retries that failed
                    failures[target.name] = exc
            self.refuse_new_chain(newest, held)
            results = {
                t.name: self.ship_with_retries(t, newest, opened.get(t.name), failures.get(t.name))
                for t in self.config.targets
            }
        if self.unchecked is not None:  # no upload read it to its end
            self.unchecked.check_alone()
        return results

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
        self.doing = f"upload to {target_config.name}"
        cluster, schedule = self.config.cluster_name, self.config.schedule
        retrying = Retrying(target_config, cluster, self.report, schedule)

        def first_attempt() -> TargetResult:
            if first_failure is not None:
                raise first_failure
            assert first is not None
            return ship(self, first, newest)

        began = first_attempt if first is not None or first_failure is not None else None
        try:
            result = retrying(lambda target: ship(self, target, newest), began)
        except SnapshotCheckFailed:  # the snapshot's failure, not this target's
            raise
        except BackupError as exc:
            return self._target_failed(target_config.name, exc, retrying.attempts)
        except Exception as exc:  # a bug or an unforeseen fault: this target alone fails
            return self._target_failed(target_config.name, unexpected(exc), retrying.attempts)
        return replace(result, attempts=retrying.attempts)

    def _target_failed(self, name: str, exc: BackupError, attempts: int) -> TargetResult:
        tried = f" (after {attempts} attempts)" if attempts > 1 else ""
        error = without_name(name, exc)
        self.report.error(f"target {name} failed{tried}: {error}")
        return TargetResult(ok=False, error=error, attempts=attempts)

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
