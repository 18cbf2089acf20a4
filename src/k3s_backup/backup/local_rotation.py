"""The run's last step on this node: local rotation to keep_local, keeping what a target still
lacks while the next snapshot fits (decided in run_plan.py, as the dry run decides it)."""

from __future__ import annotations

import shutil

from k3s_backup.backup.context import RunContext, unexpected
from k3s_backup.backup.run_plan import LocalRotation, local_rotation, local_steps
from k3s_backup.backup.shipping import TargetResult
from k3s_backup.catalogue.inventory import LOCAL
from k3s_backup.errors import BackupError
from k3s_backup.plumbing.plan import apply
from k3s_backup.policy import naming
from k3s_backup.policy.offsite import HeldThrough, remembered
from k3s_backup.report import human_size
from k3s_backup.state import read_state


def held_through(run: RunContext, results: dict[str, TargetResult]) -> HeldThrough:
    """What each target holds once shipped to: its newest copy of ours, as this run found
    it, else as the last run that reached it did."""
    state, cluster = read_state(run.config.state_dir), run.config.cluster_name
    return {
        name: naming.parse(cluster, r.newest or "") if r.ok else remembered(state, name, cluster)
        for name, r in results.items()
    }


def decide(
    run: RunContext, results: dict[str, TargetResult], newest: naming.SnapshotName
) -> LocalRotation:
    """The local rotation, the snapshots kept beyond keep_local because a target lacks them
    said; the oldest of those go, loudly, only when the next snapshot would not fit otherwise."""
    config = run.config
    run.held_through = held_through(run, results)
    local = run.local_copies()
    need = next((c.size for c in local if c.name == newest), 0)
    free = shutil.disk_usage(config.snapshot_dir).free
    decided = local_rotation(run, local, newest, run.held_through, free, need)
    lacking = [n for n, r in results.items() if not r.ok] or list(results)
    for name in decided.unshipped.dropped:
        run.report.warn(
            f"deleting local snapshot {name.filename} although {', '.join(lacking)} never"
            f" received it: only {human_size(free)} free in {config.snapshot_dir}, and"
            f" the next snapshot needs {human_size(need)}"
        )
    if decided.unshipped.keep:
        run.report.info(
            f"Keeping {len(decided.unshipped.keep)} local snapshot(s) beyond keep_local ="
            f" {config.keep_local} until {', '.join(lacking)} has them"
        )
    return decided


def rotate_local_safely(
    run: RunContext, newest: naming.SnapshotName, results: dict[str, TargetResult]
) -> str | None:
    """Local rotation (keeping what a target still lacks), whose failure must not cost the
    run its report and state record; what went wrong, or None."""
    try:
        retention = decide(run, results, newest).retention
        with run.phases.timed("rotate"):
            apply(local_steps(run, retention), False, run.env.environ, run.report.info)
        run.warn_others(LOCAL)
    except BackupError as exc:
        problem = f"local rotation failed: {exc}"
    except Exception as exc:  # a bug or an unforeseen fault: reported, never a traceback
        problem = f"local rotation failed: {unexpected(exc)}"
    else:
        return None
    run.report.error(problem)
    return problem
