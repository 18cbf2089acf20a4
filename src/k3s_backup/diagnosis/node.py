"""This node's own room: the local snapshot directory must exist and hold keep_local copies
plus the one being made."""

from __future__ import annotations

import shutil

from k3s_backup.checks import FAIL, OK
from k3s_backup.config import Config
from k3s_backup.diagnosis.check import Check
from k3s_backup.report import human_size
from k3s_backup.sources.estimate import snapshot_size_estimate


def snapshot_dir(config: Config) -> Check:
    directory = config.snapshot_dir
    if not directory.is_dir():
        return Check(
            "snapshot dir", FAIL, f"{directory} does not exist", f"mkdir -p -m 700 {directory}"
        )
    free = shutil.disk_usage(directory).free
    size = snapshot_size_estimate(config)
    needed = size * (config.keep_local + 1)
    saw = f"{directory}: {human_size(free)} free"
    if free < needed:
        return Check(
            "snapshot dir",
            FAIL,
            f"{saw}, keep_local = {config.keep_local} needs about {human_size(needed)}"
            f" ({config.keep_local + 1} x {human_size(size)})",
            f"free space on {directory}, or lower keep_local in the configuration",
        )
    return Check("snapshot dir", OK, f"{saw} (needs ~{human_size(needed)})")
