"""The run's decisions, one piece of code for `run` and `run --dry-run`: what a target lacks
(and so gets), what rotation deletes on each target and on this node, and why; the deletions as
steps of plumbing/plan.py, which the run carries out and the dry run says.

Each decision is taken from what its caller knows: the run decides a target's rotation from
its listing once shipped, the dry run from its listing with what it would ship stood in (the
snapshot not taken by the name it would get, see preview.py). Both call the same functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from k3s_backup.backup.context import RunContext
from k3s_backup.catalogue.inventory import LOCAL, Copy
from k3s_backup.catalogue.rotation import Locked, plan, remove_one, rules_of
from k3s_backup.catalogue.storage_form import StoredForm
from k3s_backup.config import TargetConfig
from k3s_backup.plumbing.plan import Call, Plan
from k3s_backup.policy import naming
from k3s_backup.policy.offsite import HeldThrough, Unshipped, protect_unshipped
from k3s_backup.policy.retention import GfsPlan, GfsRules
from k3s_backup.targets.base import Target


def stored_form(target_config: TargetConfig) -> StoredForm:
    return StoredForm(
        compression=target_config.compression,
        zstd_level=target_config.zstd_level,
        recipients=tuple(target_config.age_recipients),
    )


def stored_name(name: naming.SnapshotName, form: StoredForm) -> str:
    """The name of a local snapshot's copy in a target's stored form (`.zst`, `.age`, ...)."""
    return name.filename + form.suffix(name.suffix)


def lacking(
    local: Iterable[naming.SnapshotName],
    new: naming.SnapshotName,
    form: StoredForm,
    holds: Callable[[str], bool],
    valid: Callable[[naming.SnapshotName], bool],
) -> list[naming.SnapshotName]:
    """The snapshots a target gets, oldest first: every local one whose copy in its stored
    form it does not `holds`, and the run's `new` one (among `local` once taken); an older
    one only if still `valid` (a snapshot damaged on this disk is not shipped)."""
    return [
        name
        for name in sorted({*local, new})
        if not holds(stored_name(name, form)) and (name == new or valid(name))
    ]


def _why(retention: GfsPlan, name: naming.SnapshotName) -> str:
    return "; ".join(r.words for r in retention.why.get(name.filename, []))


@dataclass
class TargetRotation:
    """One target's rotation: the copies this cluster owns there, what goes and why; once
    carried out, the copies a lock (S3 Object Lock) kept."""

    target: str
    owned: list[Copy]
    retention: GfsPlan
    locked: list[Locked] = field(default_factory=list)

    def steps(self, target: Target) -> Plan:
        """Each deletion, with why; a copy a lock still holds is said so, not rotated."""
        steps = Plan()
        for gone in self.retention.remove:
            line = f"delete {gone.filename} from {self.target} ({_why(self.retention, gone)})"
            done = f"Rotated {gone.filename} off {self.target}"
            action = functools.partial(self._remove, target, gone)
            steps.add(Call("delete", gone.filename, line, done, action=action))
        return steps

    def _remove(self, target: Target, name: naming.SnapshotName) -> str | None:
        held = remove_one(target, name)
        if held is None:
            return None
        self.locked.append(held)
        return held.describe(self.target)

    @property
    def removed(self) -> list[naming.SnapshotName]:
        locked = {held.name for held in self.locked}
        return [name for name in self.retention.remove if name not in locked]

    def newest_kept(self, node: str, there: list[Copy] | None = None) -> naming.SnapshotName | None:
        """`node`'s newest verified copy once rotated (a manifest is written after verifying),
        never another server's or another cluster's: what local rotation relies on. `there`:
        the copies as listed after rotation [default: as planned]."""
        kept = {c.name for c in self.owned if c.name not in self.retention.remove}
        listed = self.owned if there is None else there
        verified = [c.name for c in listed if c.has_manifest and c.name in kept]
        verified = [name for name in verified if name.node == node]
        return verified[-1] if verified else None


def target_rotation(
    run: RunContext, target_config: TargetConfig, there: list[Copy], new: naming.SnapshotName
) -> TargetRotation:
    """The rotation of a target holding `there` (the run's `new` snapshot among them, kept
    whatever its time): only this cluster's copies, by the target's rules."""
    owned = run.owned(target_config.name, there)
    keep = frozenset({stored_name(new, stored_form(target_config))})
    return TargetRotation(target_config.name, owned, plan(owned, rules_of(target_config), keep))


@dataclass(frozen=True)
class LocalRotation:
    unshipped: Unshipped  # what is kept beyond keep_local as a target lacks it, what gives way
    retention: GfsPlan


def local_rotation(
    run: RunContext,
    local: list[Copy],
    new: naming.SnapshotName,
    held_through: HeldThrough,
    free: int,
    need: int,
) -> LocalRotation:
    """This node's rotation to keep_local of `local` (the run's `new` snapshot among them):
    a snapshot some target lacks is kept beyond it while `need` bytes (the next snapshot)
    stay `free` in the snapshot dir (policy/offsite.py); only this cluster's are rotated."""
    rules = GfsRules(last=run.config.keep_local)
    sizes = {c.name.filename: c.size for c in local}
    unshipped = protect_unshipped([c.name for c in local], sizes, rules, held_through, free, need)
    owned = run.owned(LOCAL, local)
    retention = plan(owned, rules, frozenset({new.filename}) | unshipped.keep)
    return LocalRotation(unshipped, retention)


def local_steps(run: RunContext, retention: GfsPlan) -> Plan:
    """Each local deletion, with why; its manifest and restore bundle go with it."""
    steps = Plan()
    for gone in retention.remove:
        line = f"delete local snapshot {gone.filename} ({_why(retention, gone)})"
        done = f"Rotated local snapshot {gone.filename}"
        action = functools.partial(_delete_local, run, gone)
        steps.add(Call("delete", gone.filename, line, done, action=action))
    return steps


def _delete_local(run: RunContext, name: naming.SnapshotName) -> str | None:
    warning = run.source.delete(name.filename)
    if warning:
        run.report.warn(warning)
    run.manifests.forget(name.filename)
    return None
