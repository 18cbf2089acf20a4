"""The small state file that remembers the last run's outcome (read by `status` later)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from k3s_backup.plumbing.atomic import write_json_atomic

STATE_NAME = "state.json"


def read_state(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / STATE_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def record_run(state_dir: Path, run: dict[str, Any]) -> None:
    state = read_state(state_dir)
    state["last_run"] = run
    if run.get("exit_code") == 0:
        state["last_success"] = run
    write_json_atomic(state_dir / STATE_NAME, state)


def record_drill(state_dir: Path, drill: dict[str, Any]) -> None:
    """Remember the last restore rehearsal: when, name, ok, revision, keys, problem."""
    state = read_state(state_dir)
    state["last_drill"] = drill
    write_json_atomic(state_dir / STATE_NAME, state)
