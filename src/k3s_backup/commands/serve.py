"""`k3s-backup serve`: parsed by service/main.py, which the entry point calls before click for
this command; this is its entry in the command list."""

from __future__ import annotations

from k3s_backup.cli_options import backup_host_command

command = backup_host_command(
    "serve", "The backup host's service: a node key's forced command there (host-setup sets it)."
)
