"""`run --dry-run`: what a run would do, as a plan through the one applier (plumbing/plan.py),
changing nothing: no snapshot, no upload, no deletion, no log line, no state record.

The targets are only listed (read-only). What each would get and what rotation would delete
there and on this node is decided by run_plan.py, the code the run decides it with, from those
listings with what the run would ship stood in: the snapshot not taken by the name it would
get, kept; a local snapshot a target would still lack kept while the next one fits.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from k3s_backup.backup.context import RunContext
from k3s_backup.backup.run import SOURCE_LABELS
from k3s_backup.backup.run_plan import (
    local_rotation,
    local_steps,
    stored_form,
    stored_name,
    target_rotation,
)
from k3s_backup.backup.shipping import what_it_gets
from k3s_backup.catalogue.clusters import current_identity
from k3s_backup.catalogue.inventory import LOCAL, Copy
from k3s_backup.config import Config, TargetConfig
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.plumbing.plan import Call, Plan, apply, note
from k3s_backup.policy import naming
from k3s_backup.policy.offsite import lacking_reason, remembered
from k3s_backup.report import Reporter
from k3s_backup.sources.factory import node_name
from k3s_backup.state import read_state
from k3s_backup.targets.factory import open_target
from k3s_backup.targets.retry import without_name


def _nothing() -> str | None:  # a preview's steps are never carried out
    return None


def _change(what: str, target: str, line: str) -> Call:
    return Call(what, target, line, line, action=_nothing)


@dataclass
class Preview:
    config: Config
    context: RunContext
    steps: Plan = field(default_factory=Plan)
    held: dict[str, naming.SnapshotName | None] = field(default_factory=dict)

    def new_name(self) -> naming.SnapshotName:
        """The name the run's snapshot would get (K3s adds the node and a unix time)."""
        now = self.context.env.now()
        local = self.context.local_copies()
        node = local[-1].name.node if local else node_name(self.config)
        prefix = naming.snapshot_prefix(self.config.cluster_name, now)
        name = naming.parse(self.config.cluster_name, f"{prefix}-{node}-{int(now.timestamp())}")
        assert name is not None  # built from a valid cluster name and node name
        return name

    def snapshot(self, new: naming.SnapshotName) -> None:
        kind = self.context.source.kind
        self.steps.add(
            _change(
                "snapshot",
                new.filename,
                f"take snapshot {new.filename} {SOURCE_LABELS[kind]} into"
                f" {self.config.snapshot_dir} (0600), check it and record its manifest",
            )
        )

    def target(self, target_config: TargetConfig, new: naming.SnapshotName) -> None:
        """What the target lacks and would get, then its rotation, decided as the run decides
        them (run_plan.py) from its listing with what it would get stood in."""
        name, form, context = target_config.name, stored_form(target_config), self.context
        local = context.local_copies()
        try:
            with open_target(target_config, self.config.cluster_name, self.config.schedule) as t:
                there = context.target_copies(t)
                gets = what_it_gets(context, t, there, [c.name for c in local], new)
                rotation = target_rotation(
                    context, target_config, self.once_shipped(name, there, local, gets), new
                )
                deletions = rotation.steps(t)  # said, never carried out
        except BackupError as exc:
            tries = target_config.retries + 1
            said = without_name(name, exc)
            self.steps.add(
                note(
                    f"target {name}: cannot be read now ({said}); the run would try"
                    f" it {tries} time(s), the snapshot staying on this node"
                )
            )
            state = read_state(self.config.state_dir)
            self.held[name] = remembered(state, name, self.config.cluster_name)
            return
        for snapshot in gets:
            stored = stored_name(snapshot, form)
            line = (
                f"ship {stored} to {name}, verify it there"
                if snapshot == new
                else f"catch up {stored} to {name}"
            )
            self.steps.add(_change("ship", stored, line))
        self.steps.add(*deletions.steps)
        self.held[name] = rotation.newest_kept(new.node)

    def once_shipped(
        self, target: str, there: list[Copy], local: list[Copy], gets: list[naming.SnapshotName]
    ) -> list[Copy]:
        """The copies a target holding `there` would hold once it got `gets`, each with its
        manifest and the identity of the local snapshot (the new one: this node's cluster)."""
        form = stored_form(self.config.target(target))
        identities = {c.name: c.identity for c in local}
        shipped = []
        for snapshot in gets:
            stored = naming.parse(self.config.cluster_name, stored_name(snapshot, form))
            identity = identities.get(snapshot, self.context.identity)
            if stored is not None:
                shipped.append(Copy(stored, target, 0, True, identity=identity))
        names = {c.name for c in shipped}
        return sorted([*(c for c in there if c.name not in names), *shipped], key=lambda c: c.name)

    def rotate_local(self, new: naming.SnapshotName) -> None:
        """This node's rotation as the run decides it (run_plan.py), the new snapshot stood in
        at about the last one's size."""
        local = self.context.local_copies()
        size = local[-1].size if local else 0
        copies = [*local, Copy(new, LOCAL, size, True, identity=self.context.identity)]
        free = shutil.disk_usage(self.config.snapshot_dir).free - size
        decided = local_rotation(self.context, copies, new, self.held, free, size)
        for name in decided.retention.keep:
            if name.filename in decided.unshipped.keep:
                self.steps.add(
                    note(
                        f"would keep local snapshot {name.filename} beyond keep_local"
                        f" = {self.config.keep_local}: {lacking_reason(name, self.held).words}"
                    )
                )
        self.steps.add(*local_steps(self.context, decided.retention).steps)


def preview_run(config: Config, env: Environment) -> ExitCode:
    """Say what `run` would do; nothing is written anywhere."""
    out = Reporter(env, None)  # no log file: a dry run leaves no trace
    if not config.targets:
        out.error("no [[targets]] configured: a run would refuse to start")
        return ExitCode.USAGE
    context = RunContext(config, env, out)
    context.identity = current_identity(config, context.manifests)
    preview = Preview(config, context)
    new = preview.new_name()
    preview.snapshot(new)
    for target_config in config.targets:
        preview.target(target_config, new)
    preview.rotate_local(new)
    preview.steps.add(
        note("Dry run: no snapshot taken, nothing shipped, deleted, logged or recorded.")
    )
    apply(preview.steps, True, env.environ, out.info)
    return ExitCode.OK
