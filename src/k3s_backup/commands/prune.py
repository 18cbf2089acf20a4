"""`k3s-backup prune`: rotation alone, locally and on every target; `--dry-run` only says."""

from __future__ import annotations

from k3s_backup.commands.run import make_source
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.inventory import LOCAL, LocalManifests, local_copies, target_copies
from k3s_backup.lock import exclusive_run
from k3s_backup.policy.retention import GfsPlan, GfsRules
from k3s_backup.report import Reporter
from k3s_backup.rotation import plan, remove_from_target, remove_local, rules_of
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
        local = plan(
            local_copies(config.snapshot_dir, config.cluster_name),
            GfsRules(last=config.keep_local),
            frozenset(),
        )
        _show(reporter, LOCAL, local, dry_run)
        if not dry_run:
            remove_local(local.remove, make_source(config, env).delete, reporter.warn)
            manifests = LocalManifests(config.state_dir, config.snapshot_dir, "k3s")
            for name in local.remove:
                manifests.forget(name.filename)
        failed = False
        for target_config in config.targets:
            try:
                with open_target(target_config, config.cluster_name) as target:
                    retention = plan(
                        target_copies(target, config.cluster_name),
                        rules_of(target_config),
                        frozenset(),
                    )
                    _show(reporter, target.name, retention, dry_run)
                    if not dry_run:
                        remove_from_target(target, retention.remove)
            except BackupError as exc:
                failed = True
                reporter.error(f"target {target_config.name}: {exc}")
    return ExitCode.FAILED if failed else ExitCode.OK
