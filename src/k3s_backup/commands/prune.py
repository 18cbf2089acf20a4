"""`k3s-backup prune`: rotation alone, locally and on every target; `--dry-run` only says."""

from __future__ import annotations

import shutil

from k3s_backup.commands.run import make_source
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.inventory import LOCAL, LocalManifests, local_copies, target_copies
from k3s_backup.lock import exclusive_run
from k3s_backup.policy.naming import SnapshotName
from k3s_backup.policy.offsite import HeldThrough, protect_unshipped, remembered
from k3s_backup.policy.retention import GfsPlan, GfsRules
from k3s_backup.report import Reporter
from k3s_backup.rotation import plan, remove_from_target, remove_local, rules_of
from k3s_backup.state import read_state
from k3s_backup.targets.factory import open_target


def _show(reporter: Reporter, location: str, retention: GfsPlan, dry_run: bool) -> None:
    for name in retention.keep:
        rules = ", ".join(retention.reasons.get(name.filename, []))
        reporter.info(f"{location}: keep   {name.filename}  ({rules})")
    verb = "would remove" if dry_run else "remove"
    for name in retention.remove:
        reporter.info(f"{location}: {verb} {name.filename}")


def prune(config: Config, env: Environment, dry_run: bool) -> ExitCode:
    reporter = Reporter(env, None if dry_run else config.log_file)
    with exclusive_run(config.state_dir):
        failed = False
        state = read_state(config.state_dir)
        held: dict[str, SnapshotName | None] = {}  # what each target holds (policy.offsite)
        for target_config in config.targets:
            held[target_config.name] = remembered(state, target_config.name, config.cluster_name)
            try:
                with open_target(target_config, config.cluster_name) as target:
                    copies = target_copies(target, config.cluster_name)
                    verified = [c for c in copies if c.has_manifest]
                    held[target.name] = verified[-1].name if verified else None
                    retention = plan(copies, rules_of(target_config), frozenset())
                    _show(reporter, target.name, retention, dry_run)
                    if not dry_run:
                        remove_from_target(target, retention.remove)
            except BackupError as exc:
                failed = True
                said = str(exc).removeprefix(f"{target_config.name}: ")  # named once
                reporter.error(f"target {target_config.name}: {said}")
        _prune_local(config, env, reporter, held, dry_run)
    return ExitCode.FAILED if failed else ExitCode.OK


def _prune_local(
    config: Config,
    env: Environment,
    reporter: Reporter,
    held: HeldThrough,
    dry_run: bool,
) -> None:
    """keep_local, but never a snapshot a target lacks while the next one fits (as `run`)."""
    copies = local_copies(config.snapshot_dir, config.cluster_name)
    rules = GfsRules(last=config.keep_local)
    sizes = {c.name.filename: c.size for c in copies}
    newest = copies[-1].size if copies else 0
    free = shutil.disk_usage(config.snapshot_dir).free if copies else 0
    unshipped = protect_unshipped([c.name for c in copies], sizes, rules, held, free, newest)
    local = plan(copies, rules, unshipped.keep)
    for filename in unshipped.keep:
        local.reasons[filename] = ["a target lacks it"]
    _show(reporter, LOCAL, local, dry_run)
    if not dry_run:
        remove_local(local.remove, make_source(config, env).delete, reporter.warn)
        manifests = LocalManifests(config.state_dir, config.snapshot_dir, "k3s")
        for name in local.remove:
            manifests.forget(name.filename)
