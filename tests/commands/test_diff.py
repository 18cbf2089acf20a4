"""`k3s-backup diff` finds exactly the changes made between two snapshots of a real etcd."""

from __future__ import annotations

import json
import shutil

import pytest

from k3s_backup.lab.etcd import EtcdServer
from tests.support.cli_runner import invoke
from tests.support.k8s_data import custom_resource, k8s_protobuf, load_cluster


@pytest.fixture
def etcd(tmp_path):
    if shutil.which("etcd") is None:
        pytest.skip("needs Debian's etcd-server and etcd-client")
    with EtcdServer(tmp_path / "etcd") as server:
        yield server


def test_diff_reports_added_removed_and_changed_grouped(etcd, tmp_path):
    load_cluster(etcd)
    before = etcd.snapshot_save(tmp_path / "before.db")
    etcd.put("/registry/pods/default/web-9", k8s_protobuf("v1", "Pod", "web-9", "default"))
    etcd.put("/registry/example.com/gadgets/g2", custom_resource("Gadget", "g2", None))
    etcd.delete("/registry/pods/default/web-1")
    etcd.put("/registry/secrets/default/db", b"k8s:enc:aescbc:v1:aescbckey:rotated")
    coredns = etcd.get_all("/registry/configmaps/kube-system/coredns")
    etcd.put("/registry/configmaps/kube-system/coredns", coredns.popitem()[1])  # same bytes
    after = etcd.snapshot_save(tmp_path / "after.db")

    result = invoke(["diff", str(before), str(after), "--json"])
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"] == {"added": 2, "removed": 1, "changed": 1}
    groups = {(g["resource"], g["namespace"]): g for g in report["groups"]}
    assert groups[("pods", "default")]["added"] == ["/registry/pods/default/web-9"]
    assert groups[("pods", "default")]["removed"] == ["/registry/pods/default/web-1"]
    assert groups[("gadgets.example.com", None)]["added"] == ["/registry/example.com/gadgets/g2"]
    assert groups[("secrets", "default")]["changed"] == ["/registry/secrets/default/db"]
    assert ("configmaps", "kube-system") not in groups  # a rewrite of the same bytes is no change
    assert report["to"]["revision"] > report["from"]["revision"]

    text = invoke(["diff", str(before), str(after)])
    assert "  + web-9" in text.lines and "  - web-1" in text.lines and "  ~ db" in text.lines
    assert text.lines[-1] == "2 added, 1 removed, 1 changed"


def test_identical_snapshots_have_no_differences(etcd, tmp_path):
    load_cluster(etcd)
    snapshot = etcd.snapshot_save(tmp_path / "one.db")
    result = invoke(["diff", str(snapshot), str(snapshot), "--json"])
    assert json.loads(result.stdout)["groups"] == []
