"""Build a backend from its configuration; the only place that knows every backend by name."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from k3s_backup.config import LocalTargetConfig, S3TargetConfig, SshTargetConfig
from k3s_backup.errors import TargetError
from k3s_backup.policy import naming
from k3s_backup.policy.lock_period import retain_until
from k3s_backup.policy.retention import GfsRules
from k3s_backup.policy.schedule import DEFAULT_SCHEDULE
from k3s_backup.policy.schedule import parse as parse_schedule
from k3s_backup.ssh.nodekeys import unsafe_permissions
from k3s_backup.ssh.session import SshSession
from k3s_backup.targets.base import Target
from k3s_backup.targets.guard import OwnNamesOnly
from k3s_backup.targets.local import LocalTarget
from k3s_backup.targets.ssh import SshTarget

if TYPE_CHECKING:
    from k3s_backup.targets.s3 import S3Target
    from k3s_backup.targets.s3_lock import ObjectLock


def open_target(
    config: SshTargetConfig | LocalTargetConfig | S3TargetConfig,
    cluster: str,
    schedule: str = DEFAULT_SCHEDULE,
) -> Target:
    """`schedule` (the configuration's) dates an S3 Object Lock: `run` passes it."""
    backend: Target
    if isinstance(config, SshTargetConfig) and config.mode != "sftp":
        from k3s_backup.targets.service import ServiceTarget

        backend = ServiceTarget(config)
    elif isinstance(config, SshTargetConfig):
        backend = SshTarget(
            config.name, SshSession.from_config(config.name, config), str(config.path)
        )
    elif isinstance(config, S3TargetConfig):
        backend = s3_backend(config, cluster, schedule)
    else:
        backend = LocalTarget(config.name, config.path)
    return OwnNamesOnly(backend, cluster)


def s3_backend(config: S3TargetConfig, cluster: str, schedule: str = DEFAULT_SCHEDULE) -> S3Target:
    """The raw S3 backend (doctor reads its Object Lock configuration, not part of `Target`)."""
    from k3s_backup.targets.s3 import S3Target  # boto3 is slow to import: only when used

    if config.credentials_file is not None:
        refuse_unsafe_credentials(config.name, config.credentials_file)
    return S3Target(
        name=config.name,
        bucket=config.bucket,
        prefix=config.prefix,
        endpoint_url=config.endpoint_url,
        region=config.region,
        credentials_file=config.credentials_file,
        profile=config.profile,
        addressing_style=config.addressing_style,
        lock=object_lock(config, cluster, schedule),
    )


def object_lock(config: S3TargetConfig, cluster: str, schedule: str) -> ObjectLock | None:
    """Each stored name (copy, manifest, bundle) is locked as its snapshot's name dates it."""
    from k3s_backup.targets.s3_lock import ObjectLock

    if config.object_lock == "off":
        return None
    rules = GfsRules(config.keep, config.keep_daily, config.keep_weekly, config.keep_monthly)
    parsed = parse_schedule(schedule)

    def until(name: str) -> datetime | None:
        stored = naming.snapshot_of_sidecar(cluster, name) or name
        snapshot = naming.parse(cluster, stored)
        if snapshot is None:
            return None
        return retain_until(snapshot, rules, parsed, config.object_lock_days)

    return ObjectLock(config.object_lock.upper(), until)


def refuse_unsafe_credentials(target: str, path: Path) -> None:
    """Like ssh with a private key others can read: refuse the file, name the fix."""
    try:
        problem = unsafe_permissions(path)
    except FileNotFoundError:
        return  # boto3 then finds no credentials there and says so
    if problem is not None:
        raise TargetError(
            f"{target}: credentials_file {path}: {problem}; refusing to use it: `chmod 600"
            f" {path}` (and `chown` it to the user running k3s-backup)"
        )
