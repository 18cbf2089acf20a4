"""`k3s-backup serve-prune`: rotation on the backup host, for append-only keys.

The same rules as the node's rotation (policy/retention.py, per node; another lineage kept:
service/hostplan.py), applied to one directory by the host's own schedule, by the host's own
receive times and never to a copy received within --protect-days. A copy goes first,
then its manifest and bundle, as on the node (catalogue/rotation.py); temporaries no upload
has touched for a day are removed too (a connection cut mid-upload leaves them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from k3s_backup.plumbing.plan import Call, Plan, apply, note
from k3s_backup.policy import naming
from k3s_backup.policy.retention import GfsRules
from k3s_backup.service.server import host_plan
from k3s_backup.service.store import Store, StoreError, now
from k3s_backup.targets.base import final_of_temp


def _ours(cluster: str, name: str | None) -> bool:
    """A copy, manifest or bundle of this cluster: what a temporary of ours is for."""
    return name is not None and naming.is_our_file(cluster, name)


def _removal(store: Store, root: Path, file: str) -> Call:
    def remove() -> None:
        store.delete(file)

    return Call(
        "delete", file, f"remove {file} from {root}", f"removed {file} from {root}", action=remove
    )


def prune(
    root: Path,
    cluster: str,
    rules: GfsRules,
    protect_days: int,
    dry_run: bool,
    say: Callable[[str], None],
) -> int:
    """Rotate `root`; 0 when done, 1 when the directory could not be read or a file removed."""
    try:
        store = Store(root)
    except StoreError as exc:
        say(f"error: {exc}")
        return 1
    try:
        entries = store.entries()
        names = sorted(entry.name for entry in entries)
        plan = host_plan(store, cluster, entries, rules, protect_days, now())
        changes = Plan([note(f"{root}: keep   {name.filename}") for name in plan.keep])
        present = set(names)
        doomed = [
            file
            for copy in plan.remove
            for file in (
                copy.filename,
                naming.manifest_name(copy.filename),
                naming.bundle_name(copy.filename),
            )
            if file in present
        ]
        doomed += [t for t in store.stale_temporaries(now()) if _ours(cluster, final_of_temp(t))]
        changes.add(*(_removal(store, root, file) for file in doomed))
        apply(changes, dry_run, {}, say)  # the one applier of every --dry-run (plumbing/plan.py)
    except (StoreError, OSError) as exc:
        say(f"error: {root}: {exc}")
        return 1
    finally:
        store.close()
    return 0
