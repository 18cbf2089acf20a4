"""Build a backend from its configuration; the only place that knows every backend by name."""

from __future__ import annotations

from pathlib import Path

from k3s_backup.config import LocalTargetConfig, S3TargetConfig, SshTargetConfig
from k3s_backup.errors import TargetError
from k3s_backup.ssh.nodekeys import unsafe_permissions
from k3s_backup.ssh.session import SshSession
from k3s_backup.targets.base import Target
from k3s_backup.targets.guard import OwnNamesOnly
from k3s_backup.targets.local import LocalTarget
from k3s_backup.targets.ssh import SshTarget


def open_target(
    config: SshTargetConfig | LocalTargetConfig | S3TargetConfig, cluster: str
) -> Target:
    backend: Target
    if isinstance(config, SshTargetConfig):
        backend = SshTarget(
            config.name, SshSession.from_config(config.name, config), str(config.path)
        )
    elif isinstance(config, S3TargetConfig):
        from k3s_backup.targets.s3 import S3Target  # boto3 is slow to import: only when used

        if config.credentials_file is not None:
            refuse_unsafe_credentials(config.name, config.credentials_file)

        backend = S3Target(
            name=config.name,
            bucket=config.bucket,
            prefix=config.prefix,
            endpoint_url=config.endpoint_url,
            region=config.region,
            credentials_file=config.credentials_file,
            profile=config.profile,
            addressing_style=config.addressing_style,
        )
    else:
        backend = LocalTarget(config.name, config.path)
    return OwnNamesOnly(backend, cluster)


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
