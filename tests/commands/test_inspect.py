"""`k3s-backup inspect` on snapshots of a real etcd holding Kubernetes-like data."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from k3s_backup.formats.kubernetes import parse_key
from k3s_backup.lab.etcd import EtcdServer
from tests.support.cli_runner import invoke
from tests.support.k8s_data import live_revision_and_keys, load_cluster


@dataclass(frozen=True)
class Taken:
    path: Path
    revision: int
    keys: set[str]


@pytest.fixture(scope="module")
def taken(tmp_path_factory) -> Taken:
    if shutil.which("etcd") is None:
        pytest.skip("needs Debian's etcd-server and etcd-client")
    root = tmp_path_factory.mktemp("inspect")
    with EtcdServer(root / "etcd") as etcd:
        load_cluster(etcd)
        path = etcd.snapshot_save(root / "snap.db")
        revision, keys = live_revision_and_keys(etcd)  # at snapshot time: nothing written since
    return Taken(path, revision, keys)


def test_counts_equal_what_etcd_reported_at_that_revision(taken):
    result = invoke(["inspect", str(taken.path), "--json"])
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["revision"] == taken.revision
    assert report["keys"] == len(taken.keys)
    expected: Counter[tuple[str, str | None]] = Counter()
    for key in taken.keys:
        parsed = parse_key(key)
        if parsed:
            expected[(parsed.resource, parsed.namespace)] += 1
    found = {(r["resource"], r["namespace"]): r["count"] for r in report["resources"]}
    assert found == dict(expected)
    assert found[("pods", "default")] == 2  # web-3 was deleted
    assert report["other_keys"] == 1
    assert report["encrypted"] == {"aescbc": 1}
    assert report["compact_revision"] > 0


def test_text_summary_names_revision_and_resources(taken):
    result = invoke(["inspect", str(taken.path)])
    assert result.code == 0, result.stderr
    assert f"revision   {taken.revision}" in result.stdout
    assert any(line.split() == ["pods", "default", "2"] for line in result.lines)


def test_keys_lists_exactly_the_live_keys_under_a_prefix(taken):
    result = invoke(["inspect", str(taken.path), "--keys", "/registry/configmaps/"])
    assert result.code == 0, result.stderr
    assert result.lines == sorted(k for k in taken.keys if k.startswith("/registry/configmaps/"))
    everything = invoke(["inspect", str(taken.path), "--keys", ""])
    assert set(everything.lines) == taken.keys


def test_keys_json_gives_each_live_keys_revisions_size_and_encryption(taken):
    result = invoke(["inspect", str(taken.path), "--keys", "/registry/", "--json"])
    assert result.code == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert list(rows) == sorted(k for k in taken.keys if k.startswith("/registry/"))
    coredns = rows["/registry/configmaps/kube-system/coredns"]
    assert coredns["version"] == 3 and coredns["mod_revision"] > coredns["create_revision"]
    assert coredns["size"] > 0 and not coredns["encrypted"]
    assert rows["/registry/secrets/default/db"]["encrypted"]
    none = invoke(["inspect", str(taken.path), "--keys", "/registry/nothing/", "--json"])
    assert none.code == 0 and json.loads(none.stdout) == []


def test_get_decodes_a_protobuf_object(taken):
    result = invoke(["inspect", str(taken.path), "--get", "/registry/pods/default/web-2", "--json"])
    assert result.code == 0, result.stderr
    obj = json.loads(result.stdout)["object"]
    assert (obj["kind"], obj["api_version"], obj["namespace"], obj["name"]) == (
        "Pod",
        "v1",
        "default",
        "web-2",
    )
    assert obj["uid"] == "uid-web-2"
    assert obj["labels"] == {"app": "web", "x": "y"}
    assert obj["resource_version"] == str(taken.revision)  # web-2 was the last write
    text = invoke(["inspect", str(taken.path), "--get", "/registry/pods/default/web-2"])
    assert "kind             Pod" in text.stdout and "labels           app=web, x=y" in text.stdout


def test_get_prints_json_objects_as_stored(taken):
    result = invoke(["inspect", str(taken.path), "--get", "/registry/example.com/gadgets/g1"])
    assert result.code == 0, result.stderr
    assert '"kind": "Gadget"' in result.stdout
    assert "kind             Gadget" in result.stdout


def test_get_says_an_encrypted_value_is_encrypted(taken):
    result = invoke(["inspect", str(taken.path), "--get", "/registry/secrets/default/db"])
    assert result.code == 0, result.stderr
    assert "encrypted at rest (provider aescbc, key aescbckey)" in result.stdout
    assert "kind" not in result.stdout


def test_get_of_a_deleted_key_says_when_it_was_deleted(taken):
    result = invoke(["inspect", str(taken.path), "--get", "/registry/pods/default/web-3"])
    assert result.code == 1
    assert "/registry/pods/default/web-3 was deleted at revision" in result.stderr


def test_a_truncated_snapshot_is_refused(taken, tmp_path):
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(taken.path.read_bytes()[:-4096])
    result = invoke(["inspect", str(truncated)])
    assert result.code == 1
    assert "truncated" in result.stderr or "512*n+32" in result.stderr


def test_an_unknown_name_is_a_usage_error(lab, tmp_path):
    config = lab.write_config(tmp_path / "config.toml")
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 0
    result = invoke(["--config", str(config), "inspect", "no-such-snapshot"], environ=lab.env())
    assert result.code == 2
    assert "no snapshot named 'no-such-snapshot'; these exist" in result.stderr


def test_a_name_is_fetched_from_the_target_and_verified(lab, tmp_path):
    config = lab.write_config(tmp_path / "config.toml")
    load_cluster(lab.etcd)
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 0
    [local] = [p for p in lab.snapshot_dir.iterdir() if p.name.startswith("k3s-lab-")]
    local.unlink()  # only the copy on the backup host is left
    revision, keys = live_revision_and_keys(lab.etcd)
    result = invoke(["--config", str(config), "inspect", local.name, "--json"], environ=lab.env())
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["location"] == "backup-host"
    assert "SHA-256 matches its manifest" in report["verified"]
    assert (report["revision"], report["keys"]) == (revision, len(keys))


def test_a_zip_copy_is_decoded_before_reading(taken, tmp_path):
    archive = tmp_path / "k3s-lab-20261123-020000-k3s-05-1795399200.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(taken.path, archive.name.removesuffix(".zip"))
    result = invoke(["inspect", str(archive), "--json"])
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["revision"], report["keys"]) == (taken.revision, len(taken.keys))
    assert report["file_size"] == archive.stat().st_size


@pytest.mark.parametrize("command", [["inspect", "{0}"], ["diff", "{0}", "{0}"]])
def test_a_read_past_its_timeout_ends_with_exit_1(taken, command):
    args = [part.format(taken.path) for part in command]
    result = invoke([*args, "--timeout", "0.0001"])
    assert result.code == 1, result.stderr
    assert "did not finish within 0.0001 s (--timeout)" in result.stderr
    assert "Traceback" not in result.stderr
    assert invoke([*args, "--timeout", "0"]).code == 0  # no limit
