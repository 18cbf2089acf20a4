"""`k3s-backup list`: every copy of ours, locally and on each target."""

from __future__ import annotations

import json
from typing import Any

from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.inventory import (
    LOCAL,
    LocalManifests,
    local_copies,
    read_target_manifest,
    target_copies,
)
from k3s_backup.manifest import created_iso
from k3s_backup.report import human_size
from k3s_backup.targets.factory import open_target


def _entry(name: str, location: str, size: int, unix: int, sha256: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "location": location,
        "size": size,
        "created": created_iso(unix),
        "sha256": sha256,
    }


def collect(config: Config, env: Environment) -> tuple[list[dict[str, Any]], list[str]]:
    """All copies, and the locations that could not be read."""
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    manifests = LocalManifests(config.state_dir, config.snapshot_dir, "k3s")
    for copy in local_copies(config.snapshot_dir, config.cluster_name):
        local_sha = manifests.get(copy.name).sha256
        entries.append(_entry(copy.name.filename, LOCAL, copy.size, copy.name.unix, local_sha))
    for target_config in config.targets:
        try:
            with open_target(target_config, config.cluster_name) as target:
                for copy in target_copies(target, config.cluster_name):
                    sha = (
                        read_target_manifest(target, copy.name.filename).sha256
                        if copy.has_manifest
                        else None
                    )
                    entries.append(
                        _entry(copy.name.filename, target.name, copy.size, copy.name.unix, sha)
                    )
        except BackupError as exc:
            problems.append(f"{target_config.name}: {exc}")
    return entries, problems


def list_copies(config: Config, env: Environment, as_json: bool) -> ExitCode:
    entries, problems = collect(config, env)
    if as_json:
        env.stdout.write(json.dumps(entries, indent=2) + "\n")
    else:
        width = max([len(e["name"]) for e in entries] + [4])
        env.stdout.write(f"{'NAME':<{width}}  {'LOCATION':<12}  {'SIZE':>10}  CREATED (UTC)\n")
        for e in entries:
            env.stdout.write(
                f"{e['name']:<{width}}  {e['location']:<12}  {human_size(e['size']):>10}"
                f"  {e['created']}\n"
            )
    for problem in problems:
        env.stderr.write(f"error: cannot list {problem}\n")
    return ExitCode.FAILED if problems else ExitCode.OK
