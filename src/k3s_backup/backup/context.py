"""What one run carries from step to step (its configuration, source, records, recovery key,
the identity of its snapshot) and the views every step takes of the copies."""

from __future__ import annotations

from pathlib import Path

from k3s_backup.backup.phases import Phases
from k3s_backup.backup.unchecked import UncheckedSnapshot
from k3s_backup.catalogue import recovery_key
from k3s_backup.catalogue.clusters import others_warnings, split_by_cluster
from k3s_backup.catalogue.inventory import (
    Copy,
    LocalManifests,
    local_copies,
    target_copies,
    with_identities,
)
from k3s_backup.config import Config, SshTargetConfig
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError
from k3s_backup.plumbing.streams import sha256_stream
from k3s_backup.policy.identity import ClusterIdentity
from k3s_backup.policy.offsite import HeldThrough
from k3s_backup.report import Reporter
from k3s_backup.sources.factory import open_source
from k3s_backup.ssh.nodekeys import open_key_warnings
from k3s_backup.targets.base import Target


class RunContext:
    def __init__(
        self, config: Config, env: Environment, reporter: Reporter, new_cluster: bool = False
    ) -> None:
        self.config = config
        self.env = env
        self.report = reporter
        self.new_cluster = new_cluster  # --new-cluster: start a chain beside another cluster's
        self.source = open_source(config, env.environ)
        self.manifests = LocalManifests(config.state_dir, config.snapshot_dir, self.source.kind)
        self.phases = Phases()
        self.identity: ClusterIdentity | None = None  # of this run's snapshot
        self.unchecked: UncheckedSnapshot | None = None  # it, until its first read checks it
        self.recovery_key = self._recovery_key()
        keys = [t.identity_file for t in config.targets if isinstance(t, SshTargetConfig)]
        for warning in open_key_warnings(keys):  # the run goes on: paramiko takes such a key
            self.report.warn(warning)
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

    def local_copies(self) -> list[Copy]:
        """This cluster's local snapshots, each with its identity."""
        copies = local_copies(self.config.snapshot_dir, self.config.cluster_name)
        return self.manifests.with_identities(copies)

    def target_copies(self, target: Target) -> list[Copy]:
        known = self.manifests.known(self.local_copies())
        return with_identities(target, target_copies(target, self.config.cluster_name), known)

    def owned(self, location: str, copies: list[Copy]) -> list[Copy]:
        """The copies this run's cluster owns (and may rotate); the others are kept and named."""
        owned, others = split_by_cluster(copies, self.identity)
        self.others[location] = others
        return owned

    def warn_others(self, location: str) -> None:
        for warning in others_warnings(self.config.cluster_name, location, self.others[location]):
            self.report.warn(warning)


def file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return sha256_stream(stream)


def unexpected(exc: Exception) -> BackupError:
    """An exception nothing foresaw, as a message that names it (never a traceback)."""
    detail: object = exc
    if isinstance(exc, OSError) and exc.strerror:
        detail = f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return BackupError(f"unexpected {type(exc).__name__}: {detail}")
