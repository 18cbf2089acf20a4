"""`k3s-backup drill`: restore into a real throwaway etcd and compare with the file."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from k3s_backup.lock import exclusive_run
from k3s_backup.policy import naming
from tests.cli_runner import invoke
from tests.json_schema import validate
from tests.k8s_data import live_revision_and_keys, load_cluster


def _state(lab) -> dict[str, Any]:
    return json.loads((lab.root / "state" / "state.json").read_text())


def _backup(lab, tmp_path, **overrides):
    """Config, the snapshot's name (as on this node) and its stored copy on the backup host."""
    config = lab.write_config(tmp_path / "config.toml", **overrides)
    load_cluster(lab.etcd)
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 0
    [name] = [p.name for p in lab.snapshot_dir.iterdir() if naming.is_ours("k3s-lab", p.name)]
    [stored] = [p for p in lab.remote_dir.iterdir() if naming.is_ours("k3s-lab", p.name)]
    return config, name, stored


def test_drill_restores_the_latest_copy_and_records_it(lab, tmp_path):
    textfile = tmp_path / "k3s_backup.prom"
    config, name, _stored = _backup(lab, tmp_path, metrics_textfile=textfile)
    revision, keys = live_revision_and_keys(lab.etcd)
    result = invoke(["--config", str(config), "drill"], environ=lab.env())
    assert result.code == 0, result.stderr
    drill = _state(lab)["last_drill"]
    assert drill["ok"] is True and drill["problem"] is None
    assert (drill["name"], drill["revision"], drill["keys"]) == (name, revision, len(keys))
    assert f"restored   revision {revision}, {len(keys)} keys" in result.stdout
    status = invoke(["--config", str(config), "status", "--json"], environ=lab.env())
    assert validate(status.stdout, "status")["last_drill"]["ok"] is True
    metrics = {
        sample.name: sample.value
        for family in text_string_to_metric_families(textfile.read_text())
        for sample in family.samples
    }
    assert metrics["k3s_backup_last_drill_success"] == 1
    when = datetime.fromisoformat(drill["when"]).timestamp()
    assert metrics["k3s_backup_last_drill_timestamp_seconds"] == when


def test_drill_of_a_truncated_copy_fails_and_says_why(lab, tmp_path):
    config, name, stored = _backup(lab, tmp_path)
    (lab.snapshot_dir / name).unlink()  # only the backup host's copy is left
    stored.write_bytes(stored.read_bytes()[:-100])
    result = invoke(["--config", str(config), "drill", name], environ=lab.env())
    assert result.code == 1
    assert f"drill of {name} failed" in result.stderr
    assert "does not verify: SHA-256" in result.stderr
    drill = _state(lab)["last_drill"]
    assert drill["ok"] is False and "truncated" in drill["problem"]
    status = invoke(["--config", str(config), "status"], environ=lab.env())
    assert f"Last drill:  {drill['when']}  {name}: FAILED" in status.stdout
    assert f"WARN: the last restore rehearsal ({drill['when']}) of {name} failed" in (status.stdout)


def test_drill_of_a_truncated_file_fails_before_restoring(lab, tmp_path):
    config, name, _stored = _backup(lab, tmp_path)
    truncated = tmp_path / "truncated"
    truncated.write_bytes((lab.snapshot_dir / name).read_bytes()[:-4096])
    result = invoke(["--config", str(config), "drill", str(truncated)], environ=lab.env())
    assert result.code == 1
    assert _state(lab)["last_drill"]["ok"] is False


def test_drill_without_etcd_says_what_is_missing(lab, tmp_path):
    _backup(lab, tmp_path)
    config = tmp_path / "config.toml"
    environ = {**lab.env(), "PATH": str(lab.bin_dir)}
    result = invoke(["--config", str(config), "drill"], environ=environ)
    assert result.code == 2
    assert "drill needs etcd and etcdctl on PATH" in result.stderr
    assert "apt-get install etcd-server etcd-client" in result.stderr


def test_drill_waits_for_no_backup_it_refuses_while_one_runs(lab, tmp_path):
    config, _name, _stored = _backup(lab, tmp_path)
    before = (lab.root / "state" / "state.json").read_bytes()
    with exclusive_run(lab.root / "state"):  # a backup run holds the lock
        result = invoke(["--config", str(config), "drill"], environ=lab.env())
    assert result.code == 4, result.stderr
    assert "another k3s-backup run holds the lock" in result.stderr
    assert (lab.root / "state" / "state.json").read_bytes() == before  # nothing recorded


def test_a_drill_past_its_timeout_fails_and_is_recorded(lab, tmp_path):
    config, _name, _stored = _backup(lab, tmp_path)
    result = invoke(["--config", str(config), "drill", "--timeout", "0.0001"], environ=lab.env())
    assert result.code == 1, result.stderr
    assert "did not finish within 0.0001 s (--timeout)" in result.stderr
    drill = _state(lab)["last_drill"]
    assert drill["ok"] is False and "--timeout" in drill["problem"]
