"""What `host-setup` installs on the backup host to rotate an append-only key's directory: a
systemd service + timer where systemd runs, else a cron file. Daily: the service's rate limit
and protection window bound what collects between two runs. Pure: the files' text and paths.

Every file carries scheduling.MARKER on its first line, so host-setup replaces only its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from k3s_backup.scheduling import MARKER, RANDOMIZED_DELAY, SystemPaths, plain_path

PRUNE_CRON = "23 3 * * *"  # daily, away from the nodes' default 02:00 backups
PRUNE_CALENDAR = "*-*-* 03:23:00"  # the same, for systemd


@dataclass(frozen=True)
class PruneJob:
    program: Path  # the k3s-backup to run
    directory: Path
    cluster: str
    user: str  # the account that owns the directory: rotation runs as it, never as root
    rules: str  # serve-prune's retention arguments (`--keep N ... --protect-days D`)

    @property
    def command(self) -> str:
        return (
            f"{plain_path(self.program, 'program')} serve-prune --root {self.directory}"
            f" --cluster {self.cluster} {self.rules}"
        )

    @property
    def unit(self) -> str:
        """Unit and cron file name: Debian's cron ignores /etc/cron.d names holding a dot."""
        return "k3s-backup-prune-" + re.sub(r"[^A-Za-z0-9_-]", "_", self.cluster)


def systemd_runs(paths: SystemPaths) -> bool:
    """sd_booted(3): /run/systemd/system exists only while systemd is the init system."""
    return paths.under("/run/systemd/system").is_dir()


def cron_path(paths: SystemPaths, job: PruneJob) -> Path:
    return paths.under(f"/etc/cron.d/{job.unit}")


def unit_paths(paths: SystemPaths, job: PruneJob) -> tuple[Path, Path]:
    base = f"/etc/systemd/system/{job.unit}"
    return paths.under(base + ".service"), paths.under(base + ".timer")


def cron_file(job: PruneJob) -> str:
    return (
        f"{MARKER}\n"
        f"# Rotation of {job.directory} on the backup host: the node's key is append-only.\n"
        f"{PRUNE_CRON} {job.user} {job.command} 2>&1 | logger -t k3s-backup-prune\n"
    )


def service_unit(job: PruneJob) -> str:
    return (
        f"{MARKER}\n"
        "[Unit]\n"
        f"Description=Rotate {job.directory} (k3s-backup serve-prune, cluster {job.cluster})\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"User={job.user}\n"
        f"ExecStart={job.command}\n"
        "# It only reads and removes files in the directory: nothing else is writable to it.\n"
        "NoNewPrivileges=yes\n"
        "ProtectSystem=strict\n"
        f"ReadWritePaths={job.directory}\n"
        "PrivateTmp=yes\n"
        "SyslogIdentifier=k3s-backup-prune\n"
    )


def timer_unit(job: PruneJob) -> str:
    return (
        f"{MARKER}\n"
        "[Unit]\n"
        f"Description=Rotate {job.directory} daily (k3s-backup serve-prune)\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar={PRUNE_CALENDAR}\n"
        "# A rotation missed while the host was off runs at the next boot.\n"
        "Persistent=true\n"
        f"RandomizedDelaySec={RANDOMIZED_DELAY}\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


def files(paths: SystemPaths, job: PruneJob) -> tuple[list[tuple[Path, str]], list[Path]]:
    """(files to write, files of the other scheduler to remove if ours)."""
    service, timer = unit_paths(paths, job)
    if systemd_runs(paths):
        return [(service, service_unit(job)), (timer, timer_unit(job))], [cron_path(paths, job)]
    return [(cron_path(paths, job), cron_file(job))], [service, timer]
