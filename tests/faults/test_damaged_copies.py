"""A remote copy damaged after it was verified: `verify` names it (exit 1) and `restore` refuses
it before anything is stopped. Bit flips are covered in tests/commands/test_run.py
(test_verify_names_a_corrupted_and_a_truncated_copy) and tests/commands/test_restore.py
(test_corrupted_remote_copy_is_refused_before_anything_stops); here: truncation, a copy
swapped for another whole and valid one, an emptied copy, a copy whose manifest is gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from k3s_backup.lab.fake_k3s import FakeK3sState
from k3s_backup.lab.lab import Lab
from tests.support.faults import Clock, cli, ours


def damage(lab: Lab, how: str) -> str:
    """Damage the newest remote copy; its name."""
    older, newest = ours(lab.remote_dir)
    path = lab.remote_dir / newest
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif how == "swapped":  # a whole, valid copy of another snapshot under this name
        path.write_bytes((lab.remote_dir / older).read_bytes())
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "manifest-gone":
        (lab.remote_dir / f"{newest}.json").unlink()
    return newest


@pytest.fixture
def config(lab: Lab, tmp_path: Path) -> Path:
    k3s = {"bin": lab.bin_dir / "k3s", "data_dir": lab.data_dir, "config_dir": lab.root / "etc"}
    return lab.write_config(tmp_path / "c.toml", k3s=k3s, restore={"ready_timeout": 60})


@pytest.mark.parametrize("how", ["truncated", "swapped", "emptied", "manifest-gone"])
def test_a_damaged_remote_copy_is_named_by_verify_and_refused_by_restore(
    lab: Lab, config: Path, how: str
) -> None:
    clock = Clock()
    lab.etcd.put("/registry/configmaps/default/app", "v1")
    assert cli(lab, config, clock, "run").code == 0
    lab.etcd.put("/registry/configmaps/default/app", "v2")
    assert cli(lab, config, clock, "run").code == 0
    name = damage(lab, how)

    verified = cli(lab, config, clock, "verify", "--json")
    assert verified.code == 1
    bad = [f["name"] for f in json.loads(verified.stdout) if not f["ok"]]
    assert bad == [name]

    lab.etcd.put("/registry/configmaps/default/app", "v3")
    keys, pid = lab.etcd.get_all(), FakeK3sState.load(lab.state_file).etcd_pid
    snapshot = name.removesuffix(".zst")
    restored = cli(lab, config, clock, "restore", snapshot, "--from", "backup-host", "--yes")
    if how == "manifest-gone":  # a copy that cannot be verified is not even offered
        assert restored.code == 2 and f"no snapshot named {snapshot!r}" in restored.stderr
    else:
        assert restored.code == 1, restored.stderr
        assert "does not verify" in restored.stderr and "nothing was changed" in restored.stderr
    assert lab.etcd.get_all() == keys  # etcd kept running, untouched
    assert FakeK3sState.load(lab.state_file).etcd_pid == pid
