"""`k3s-backup prune`: rotation alone, locally and on every target; `--dry-run` only says.

Only copies of this node's cluster are rotated (clusters.py); the copies of another cluster under
the same name are kept and named. `--adopt-unknown` takes copies of unknown identity (made before
identities were recorded) for this cluster's.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from dataclasses import replace

import click

from k3s_backup.catalogue.clusters import current_identity, others_warnings, split_by_cluster
from k3s_backup.catalogue.inventory import (
    LOCAL,
    Copy,
    LocalManifests,
    identified_copies,
)
from k3s_backup.catalogue.rotation import Locked, plan, remove_one, rules_of
from k3s_backup.cli_options import Context, pass_context
from k3s_backup.config import Config, TargetConfig
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.plumbing.lock import exclusive_run
from k3s_backup.plumbing.plan import Call, Plan, apply, note
from k3s_backup.policy.identity import ClusterIdentity
from k3s_backup.policy.naming import SnapshotName
from k3s_backup.policy.offsite import lacking_reason, protect_unshipped, remembered
from k3s_backup.policy.retention import GfsPlan, GfsRules, Reason
from k3s_backup.report import Reporter
from k3s_backup.sources.factory import open_source
from k3s_backup.state import read_state
from k3s_backup.targets.base import Target
from k3s_backup.targets.retry import Retrying, without_name


def _words(reasons: list[Reason]) -> str:
    return "; ".join(r.words for r in reasons)


def rotation_plan(
    retention: GfsPlan,
    delete: Callable[[SnapshotName], str | None],
    locked: Callable[[SnapshotName], Locked | None] = lambda name: None,
) -> Plan:
    """Each copy kept, with why in words, then each removal with why (`delete` carries it
    out); a copy a lock still holds is said kept, as the real prune would find it."""
    plan = Plan()
    for name in retention.keep:
        plan.add(note(f"keep   {name.filename}  ({_words(retention.why[name.filename])})"))
    for name in retention.remove:
        held = locked(name)
        if held is not None:
            plan.add(note(f"keep   {name.filename}  ({held.held}: not removable yet)"))
            continue
        why = _words(retention.why.get(name.filename, []))
        line = f"remove {name.filename}  ({why})"
        action = functools.partial(delete, name)
        plan.add(Call("delete", name.filename, line, f"removed {name.filename}", action=action))
    return plan


def locked_in(target: Target) -> Callable[[SnapshotName], Locked | None]:
    def locked(name: SnapshotName) -> Locked | None:
        held = target.lock_of(name.filename)
        return Locked(name, held.until) if held is not None else None

    return locked


class Pruner:
    def __init__(
        self, config: Config, env: Environment, dry_run: bool, adopt_unknown: bool
    ) -> None:
        self.config = config
        self.env = env
        self.dry_run = dry_run
        self.adopt_unknown = adopt_unknown
        self.report = Reporter(env, None if dry_run else config.log_file)
        self.source = open_source(config, env.environ)
        self.manifests = LocalManifests(config.state_dir, config.snapshot_dir, self.source.kind)
        self.current: ClusterIdentity | None = current_identity(config, self.manifests)
        # what each target holds (policy.offsite): as listed now, else as the last run saw it
        state = read_state(config.state_dir)
        self.held: dict[str, SnapshotName | None] = {
            t.name: remembered(state, t.name, config.cluster_name) for t in config.targets
        }

    def split(self, copies: list[Copy]) -> tuple[list[Copy], list[Copy]]:
        """(the copies this cluster owns and may rotate, the others)."""
        if self.adopt_unknown and self.current is not None:
            copies = [c if c.identity else replace(c, identity=self.current) for c in copies]
        return split_by_cluster(copies, self.current)

    def owned(self, location: str, copies: list[Copy]) -> list[Copy]:
        owned, others = self.split(copies)
        for warning in others_warnings(self.config.cluster_name, location, others):
            self.report.warn(warning)
        return owned

    def say(self, location: str) -> Callable[[str], None]:
        return lambda line: self.report.info(f"{location}: {line}")

    def local(self) -> None:
        copies = self.manifests.local_copies(self.config.cluster_name)
        owned, rules = self.owned(LOCAL, copies), GfsRules(last=self.config.keep_local)
        unshipped = self.unshipped(owned, rules)
        retention = plan(owned, rules, unshipped)
        for name in retention.keep:
            if name.filename in unshipped:
                retention.protected_by(name.filename, lacking_reason(name, self.held))

        def delete(name: SnapshotName) -> str | None:
            warning = self.source.delete(name.filename)
            if warning:
                self.report.warn(warning)
            self.manifests.forget(name.filename)
            return None

        steps = rotation_plan(retention, delete)
        apply(steps, self.dry_run, self.env.environ, self.say(LOCAL))

    def unshipped(self, copies: list[Copy], rules: GfsRules) -> frozenset[str]:
        """keep_local, but never a snapshot a target lacks while the next one fits (as `run`)."""
        if not copies:
            return frozenset()
        sizes = {c.name.filename: c.size for c in copies}
        free = shutil.disk_usage(self.config.snapshot_dir).free
        names = [c.name for c in copies]
        return protect_unshipped(names, sizes, rules, self.held, free, copies[-1].size).keep

    def targets(self) -> bool:
        """Whether every target could be pruned."""
        known = self.manifests.known(self.manifests.local_copies(self.config.cluster_name))
        failed = False
        for target_config in self.config.targets:
            try:
                self.target(target_config, known)
            except BackupError as exc:
                failed = True
                said = without_name(target_config.name, exc)
                self.report.error(f"target {target_config.name}: {said}")
        return not failed

    def target(self, config: TargetConfig, known: dict[str, ClusterIdentity | None]) -> None:
        """Survey, plan, then apply the plan (a dry run: say it, no connection). The survey and
        the deletions are each one unit of work on the target, done again on a new connection
        after a link failure; the plan goes on after its last step done, so each copy is said
        once (a deletion cut before its answer is done again: deleting what is gone is no
        error)."""
        cluster, rules = self.config.cluster_name, rules_of(config)
        retrying = Retrying(config, cluster, self.report)

        def survey(target: Target) -> tuple[list[Copy], dict[str, Locked | None]]:
            """The copies there and, for a dry run, which of those to remove are locked."""
            copies = identified_copies(target, cluster, known)
            removal = plan(self.split(copies)[0], rules, frozenset()).remove
            locked = locked_in(target) if self.dry_run else lambda name: None
            return copies, {name.filename: locked(name) for name in removal}

        copies, locks = retrying(survey)
        owned = self.owned(config.name, copies)
        verified = [c for c in owned if c.has_manifest]
        self.held[config.name] = verified[-1].name if verified else None
        retention = plan(owned, rules, frozenset())
        connection: list[Target] = []  # the unit's own: a new one after a link failure

        def delete(name: SnapshotName) -> str | None:
            held = remove_one(connection[-1], name)
            return (
                None
                if held is None
                else f"{name.filename}: {held.held}; removed by the first run after"
            )

        steps = rotation_plan(retention, delete, lambda n: locks.get(n.filename))
        say = self.say(config.name)
        if self.dry_run:
            apply(steps, True, self.env.environ, say)
            return

        def work(target: Target) -> None:
            connection.append(target)
            apply(steps, False, self.env.environ, say)  # goes on after the last step done

        apply(steps, False, self.env.environ, say, notes_only=True)  # the copies kept, first
        retrying(work)


def prune(config: Config, env: Environment, dry_run: bool, adopt_unknown: bool = False) -> ExitCode:
    with exclusive_run(config.state_dir):
        pruner = Pruner(config, env, dry_run, adopt_unknown)
        pruned = pruner.targets()  # first: what they hold protects local snapshots
        pruner.local()
        return ExitCode.OK if pruned else ExitCode.FAILED


@click.command("prune")
@click.option(
    "--dry-run", is_flag=True, help="Print what would be kept and removed; change nothing."
)
@click.option(
    "--adopt-unknown",
    is_flag=True,
    help="Rotate copies of unknown cluster identity (made before identities were recorded)"
    " as this cluster's.",
)
@pass_context
def command(ctx: Context, dry_run: bool, adopt_unknown: bool) -> int:
    """Apply rotation alone, locally and on every target (this cluster's copies only)."""
    return prune(ctx.config(), ctx.env, dry_run, adopt_unknown)
