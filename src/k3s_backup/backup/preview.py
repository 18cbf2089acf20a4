"""`run --dry-run`: what a run would do, as a plan through the one applier (plumbing/plan.py),
changing nothing: no snapshot, no upload, no deletion, no log line, no state record.

The targets are only listed (read-only) to say what each lacks and what its rotation would
delete; the snapshot not taken is stood in for by the name it would get, so rotation is
planned as the run would plan it: the new snapshot kept, a local snapshot a target would still
lack kept while the next one fits (policy/offsite.py).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from k3s_backup.backup.context import RunContext
from k3s_backup.backup.run import SOURCE_LABELS
from k3s_backup.backup.shipping import stored_form, stored_name
from k3s_backup.catalogue.clusters import current_identity
from k3s_backup.catalogue.inventory import LOCAL, Copy
from k3s_backup.catalogue.rotation import plan, rules_of
from k3s_backup.config import Config, TargetConfig
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.plumbing.plan import Call, Plan, apply, note
from k3s_backup.policy import naming
from k3s_backup.policy.offsite import HeldThrough, lacking_reason, protect_unshipped, remembered
from k3s_backup.policy.retention import GfsPlan, GfsRules
from k3s_backup.report import Reporter
from k3s_backup.sources.factory import node_name
from k3s_backup.state import read_state
from k3s_backup.targets.factory import open_target
from k3s_backup.targets.retry import without_name


def _nothing() -> str | None:  # a preview's steps are never carried out
    return None


def _change(what: str, target: str, line: str) -> Call:
    return Call(what, target, line, line, action=_nothing)


def _reasons(retention: GfsPlan, name: naming.SnapshotName) -> str:
    return "; ".join(r.words for r in retention.why.get(name.filename, []))


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
        name, form = target_config.name, stored_form(target_config)
        try:
            with open_target(target_config, self.config.cluster_name, self.config.schedule) as t:
                there = self.context.target_copies(t)
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
        present = {c.name.filename for c in there if c.has_manifest}
        for copy in self.context.local_copies():
            stored = stored_name(copy.name, form)
            if stored not in present:
                self.steps.add(_change("ship", stored, f"catch up {stored} to {name}"))
        stored = stored_name(new, form)
        self.steps.add(_change("ship", stored, f"ship {stored} to {name}, verify it there"))
        self.held[name] = new
        self.rotate_target(target_config, there, new)

    def rotate_target(
        self, target_config: TargetConfig, there: list[Copy], new: naming.SnapshotName
    ) -> None:
        """The target's rotation once it holds every local snapshot and the new one."""
        form, name = stored_form(target_config), target_config.name
        owned = self.context.owned(name, there)
        names = {c.name.filename: c.name for c in owned}
        for copy in [*self.context.local_copies(), Copy(new, LOCAL, 0, True)]:
            stored = naming.parse(self.config.cluster_name, stored_name(copy.name, form))
            if stored is not None:
                names.setdefault(stored.filename, stored)
        new_stored = stored_name(new, form)
        retention = plan(
            [Copy(n, name, 0, True) for n in names.values()],
            rules_of(target_config),
            frozenset({new_stored}),
        )
        for gone in retention.remove:
            why = _reasons(retention, gone)
            self.steps.add(
                _change("delete", gone.filename, f"delete {gone.filename} from {name} ({why})")
            )

    def rotate_local(self, new: naming.SnapshotName) -> None:
        copies = [
            *self.context.owned(LOCAL, self.context.local_copies()),
            Copy(new, LOCAL, 0, True),
        ]
        rules = GfsRules(last=self.config.keep_local)
        sizes = {c.name.filename: c.size for c in copies}
        size = copies[-2].size if len(copies) > 1 else 0  # the new one: about the last one's
        free = shutil.disk_usage(self.config.snapshot_dir).free - size
        names = [c.name for c in copies]
        held: HeldThrough = self.held
        unshipped = protect_unshipped(names, sizes, rules, held, free, size)
        retention = plan(copies, rules, frozenset({new.filename}) | unshipped.keep)
        for name in retention.keep:
            if name.filename in unshipped.keep:
                self.steps.add(
                    note(
                        f"would keep local snapshot {name.filename} beyond keep_local"
                        f" = {self.config.keep_local}: {lacking_reason(name, held).words}"
                    )
                )
        for gone in retention.remove:
            why = _reasons(retention, gone)
            self.steps.add(
                _change("delete", gone.filename, f"delete local snapshot {gone.filename} ({why})")
            )


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
