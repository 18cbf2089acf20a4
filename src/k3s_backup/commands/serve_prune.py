"""`k3s-backup serve-prune`: parsed by service/main.py, which the entry point calls before click
for this command; this is its entry in the command list."""

from __future__ import annotations

from k3s_backup.cli_options import backup_host_command

command = backup_host_command(
    "serve-prune", "Rotate a backup directory on the backup host (for append-only node keys)."
)
