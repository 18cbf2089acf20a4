"""What a location holds of ours, and the manifests this node records for its own snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from k3s_backup.sources.sqlite import SqliteSource
from tests.sources.test_sqlite import k3s_tree
from tests.support.cli_runner import invoke
from tests.support.keys import recovery_key_file


def sqlite_node(tmp_path: Path) -> tuple[Path, Path]:
    """A SQLite-only K3s node (`source = "auto"` takes the sqlite source) with one snapshot
    made before manifests were recorded: (the config file, the snapshot)."""
    data_dir = k3s_tree(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(
        f'cluster_name = "home"\nnode_name = "pi"\nsnapshot_dir = "{tmp_path}/snapshots"\n'
        f'state_dir = "{tmp_path}/state"\nlog_file = "{tmp_path}/log"\n'
        f'recovery_key_file = "{recovery_key_file(tmp_path)}"\n'
        f'[k3s]\ndata_dir = "{data_dir}"\n'
    )
    source = SqliteSource(data_dir / "server/db/state.db", tmp_path / "snapshots", "home", "pi")
    return config, source.take("home-20261124-020000").path


@pytest.mark.parametrize(
    "command",
    [["list"], ["verify"], ["fetch", "latest", "--out", "fetched.db"]],
    ids=["list", "verify", "fetch"],
)
def test_a_manifest_computed_for_an_older_snapshot_names_the_configured_source(
    tmp_path: Path, command: list[str]
) -> None:
    config, snapshot = sqlite_node(tmp_path)
    args = [str(tmp_path / a) if a.endswith(".db") else a for a in command]
    result = invoke(["--config", str(config), *args])
    assert result.code == 0, result.stderr
    recorded = tmp_path / "state" / "manifests" / f"{snapshot.name}.json"
    assert json.loads(recorded.read_text())["source"] == "sqlite"  # not "k3s"
