"""What the backup host needs for this node's key, filled in: the authorized_keys lines for
the guide's root SFTP, or the two commands that set up its k3s-backup service."""

from __future__ import annotations

import shlex

from k3s_backup.config import SshTargetConfig
from k3s_backup.ssh import nodekeys


def host_commands(
    cluster: str, target: SshTargetConfig, public: str, source: str | None
) -> list[str]:
    """(1) install k3s-backup on the backup host, (2) its host-setup for this node's key."""
    words = ["k3s-backup", "host-setup", "--dir", str(target.path), "--key", public]
    words += ["--from", source or "ADDRESS-OF-THIS-NODE", "--cluster", cluster]
    words += ["--mode", target.mode, "--user", target.user, "--keep", str(target.keep)]
    for flag, count in (
        ("--keep-daily", target.keep_daily),
        ("--keep-weekly", target.keep_weekly),
        ("--keep-monthly", target.keep_monthly),
    ):
        words += [flag, str(count)] if count else []
    return [
        "1. install k3s-backup as on this node: git clone <this repository> k3s-backup &&"
        " cd k3s-backup && ./install.sh",
        f"2. {shlex.join(words)}",
    ]


def key_help(cluster: str, target: SshTargetConfig) -> list[str]:
    """What to do on the backup host so that it accepts this node's key."""
    public = nodekeys.public_line(target.identity_file)
    source = nodekeys.local_address_towards(target.host, target.port)
    if target.mode != "sftp":
        lines = [f"On the backup host {target.host}, as root (README: The backup host):"]
        return lines + [f"  {line}" for line in host_commands(cluster, target, public, source)]
    return [
        f"Add ONE of these lines to ~{target.user}/.ssh/authorized_keys on {target.host}:",
        f"  {public}",
        "or, restricted (no forwarding, PTY or agent; only from this node):",
        f"  {nodekeys.restricted_line(public, source)}",
    ]
