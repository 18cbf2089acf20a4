"""`k3s-backup drill`: restore into a real throwaway etcd and compare with the file."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from k3s_backup.catalogue.opening import OpenedSnapshot
from k3s_backup.catalogue.reading import read_snapshot
from k3s_backup.commands.drill import (
    DrillError,
    Tools,
    _restore_and_start,
    compare_contents,
    find_tools,
)
from k3s_backup.environment import Environment
from k3s_backup.formats.etcd_db import EtcdDb
from k3s_backup.plumbing.lock import exclusive_run
from k3s_backup.policy import naming
from k3s_backup.report import shown_time
from tests.support.cli_runner import invoke
from tests.support.json_schema import validate
from tests.support.k8s_data import k8s_protobuf, live_revision_and_keys, load_cluster


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
    assert f"restored   revision {revision}, {len(keys)} keys in" in result.stdout
    assert f"contents   {len(keys)} keys: every value and mod revision equal" in result.stdout
    assert "bundle     present, token of node k3s-05 readable" in result.stdout
    assert "cluster    cluster ns-kube-system" in result.stdout
    assert drill["restore_seconds"] > 0 and drill["cluster_uid"] == "ns-kube-system"
    status = invoke(["--config", str(config), "status", "--json"], environ=lab.env())
    assert validate(status.stdout, "status")["last_drill"]["ok"] is True
    metrics = {
        sample.name: sample.value
        for family in text_string_to_metric_families(textfile.read_text())
        for sample in family.samples
    }
    assert metrics["k3s_backup_last_drill_success"] == 1
    assert metrics["k3s_backup_last_drill_restore_seconds"] == drill["restore_seconds"]
    when = datetime.fromisoformat(drill["when"]).timestamp()
    assert metrics["k3s_backup_last_drill_timestamp_seconds"] == when


def test_drill_of_a_truncated_copy_fails_and_says_why(lab, tmp_path):
    config, name, stored = _backup(lab, tmp_path)
    (lab.snapshot_dir / name).unlink()  # only the backup host's copy is left
    stored.write_bytes(stored.read_bytes()[:-100])
    result = invoke(["--config", str(config), "drill", name], environ=lab.env())
    assert result.code == 1
    assert f"drill of {name} failed" in result.stderr
    assert "does not verify" in result.stderr and "bytes stored, the manifest says" in result.stderr
    drill = _state(lab)["last_drill"]
    assert drill["ok"] is False and "truncated" in drill["problem"]
    status = invoke(["--config", str(config), "status"], environ=lab.env())
    when = shown_time(drill["when"])  # local time with its offset, as every time is shown
    assert f"Last drill:  {when}  {name}: FAILED" in status.stdout
    assert f"WARN: the last restore rehearsal ({when}) of {name} failed" in (status.stdout)


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


def test_a_restored_etcd_that_differs_from_the_file_names_the_first_differing_key(
    lab, tmp_path, monkeypatch
):
    """Two real snapshots one key apart: the etcd restored from the first, compared with the
    second file, is caught at that key; compared with the first, every key is equal (read back
    in pages of 3 keys, as a large database is)."""
    monkeypatch.setattr("k3s_backup.commands.drill.PAGE_KEYS", 3)
    load_cluster(lab.etcd)
    first = lab.etcd.snapshot_save(tmp_path / "first.db")
    lab.etcd.put("/registry/configmaps/default/changed", b"after")
    second = lab.etcd.snapshot_save(tmp_path / "second.db")
    tools = find_tools(lab.env())
    assert isinstance(tools, Tools)
    env = Environment(environ=lab.env())
    member = _restore_and_start(tools, first, tmp_path / "member", env)
    try:
        opened = OpenedSnapshot("second", "file", second, second.stat().st_size, "")
        with EtcdDb(second) as db, pytest.raises(DrillError) as caught:
            compare_contents(member, db, read_snapshot(opened, db))
        assert "differ at key /registry/configmaps/default/changed" in str(caught.value)
        assert "the restored etcd does not hold it" in str(caught.value)
        with EtcdDb(first) as db:
            opened = OpenedSnapshot("first", "file", first, first.stat().st_size, "")
            reading = read_snapshot(opened, db)
            assert compare_contents(member, db, reading) == len(reading.state.keys) == 10
    finally:
        member.stop()


def test_a_copy_of_another_cluster_fails_the_drill(lab, tmp_path):
    config, _name, _stored = _backup(lab, tmp_path)
    # This node now runs another cluster (say, a reinstall): the newest copy is not its own.
    lab.etcd.put(
        "/registry/namespaces/kube-system",
        k8s_protobuf("v1", "Namespace", "kube-system", uid="other"),
    )
    result = invoke(["--config", str(config), "drill"], environ=lab.env())
    assert result.code == 1
    assert "the copy is of another cluster (cluster ns-kube-system" in result.stderr
    assert "than this node's (cluster other" in result.stderr


def test_a_copy_without_its_restore_bundle_fails_the_drill(lab, tmp_path):
    config, name, stored = _backup(lab, tmp_path)
    (lab.snapshot_dir / name).unlink()  # drill the backup host's copy
    (stored.parent / naming.bundle_name(stored.name)).unlink()
    result = invoke(["--config", str(config), "drill"], environ=lab.env())
    assert result.code == 1
    assert f"no readable restore bundle beside {name} on backup-host" in result.stderr
    assert _state(lab)["last_drill"]["ok"] is False


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
