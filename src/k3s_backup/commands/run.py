"""`k3s-backup run`: snapshot, ship to every target (catching up), verify, rotate, report.
The work is the backup package's (backup/locked_run.py); this is the command's door to it."""

from __future__ import annotations

from typing import TextIO

from k3s_backup.backup.locked_run import run_backup
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode


def run(
    config: Config, env: Environment, json_out: TextIO | None = None, new_cluster: bool = False
) -> ExitCode:
    """`run [--json] [--new-cluster]`: the run report as JSON on stdout with --json."""
    return run_backup(config, env, json_out, new_cluster)
