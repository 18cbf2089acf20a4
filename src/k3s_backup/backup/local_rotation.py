"""The run's last step on this node: local rotation to keep_local, keeping what a target still
lacks while the next snapshot fits."""

from __future__ import annotations

import shutil

from k3s_backup.backup.context import RunContext, unexpected
from k3s_backup.backup.shipping import TargetResult
from k3s_backup.catalogue.inventory import LOCAL, local_copies
from k3s_backup.catalogue.rotation import plan, remove_local
from k3s_backup.errors import BackupError
from k3s_backup.policy import naming
from k3s_backup.policy.offsite import protect_unshipped, remembered
from k3s_backup.policy.retention import GfsRules
from k3s_backup.report import human_size
from k3s_backup.state import read_state


def keep_unshipped(
    run: RunContext, results: dict[str, TargetResult], newest: naming.SnapshotName
) -> frozenset[str]:
    """The local snapshots rotation keeps beyond keep_local because a target lacks them;
    the oldest of them go, loudly, only when the next snapshot would not fit otherwise."""
    config = run.config
    state, cluster = read_state(config.state_dir), config.cluster_name
    run.held_through = {
        name: naming.parse(cluster, r.newest or "") if r.ok else remembered(state, name, cluster)
        for name, r in results.items()
    }
    copies = local_copies(config.snapshot_dir, config.cluster_name)
    sizes = {c.name.filename: c.size for c in copies}
    free = shutil.disk_usage(config.snapshot_dir).free
    decision = protect_unshipped(
        [c.name for c in copies],
        sizes,
        GfsRules(last=config.keep_local),
        run.held_through,
        free=free,
        need=sizes.get(newest.filename, 0),
    )
    lacking = [n for n, r in results.items() if not r.ok] or list(results)
    for name in decision.dropped:
        run.report.warn(
            f"deleting local snapshot {name.filename} although {', '.join(lacking)} never"
            f" received it: only {human_size(free)} free in {config.snapshot_dir}, and"
            f" the next snapshot needs {human_size(sizes.get(newest.filename, 0))}"
        )
    if decision.keep:
        run.report.info(
            f"Keeping {len(decision.keep)} local snapshot(s) beyond keep_local ="
            f" {config.keep_local} until {', '.join(lacking)} has them"
        )
    return decision.keep


def rotate_local_safely(
    run: RunContext, newest: naming.SnapshotName, results: dict[str, TargetResult]
) -> str | None:
    """Local rotation (keeping what a target still lacks), whose failure must not cost the
    run its report and state record; what went wrong, or None."""
    try:
        rotate_local(run, newest, keep_unshipped(run, results, newest))
    except BackupError as exc:
        problem = f"local rotation failed: {exc}"
    except Exception as exc:  # a bug or an unforeseen fault: reported, never a traceback
        problem = f"local rotation failed: {unexpected(exc)}"
    else:
        return None
    run.report.error(problem)
    return problem


def rotate_local(
    run: RunContext, newest: naming.SnapshotName, protect: frozenset[str] = frozenset()
) -> None:
    with run.phases.timed("rotate"):
        copies = run.owned(LOCAL, run.local_copies())
        rules = GfsRules(last=run.config.keep_local)
        retention = plan(copies, rules, frozenset({newest.filename}) | protect)
        remove_local(retention.remove, run.source.delete, run.report.warn)
    for name in retention.remove:
        run.manifests.forget(name.filename)
        run.report.info(f"Rotated local snapshot {name.filename}")
    run.warn_others(LOCAL)
