"""Manifests as `kubectl apply -f` takes them: names that are file names, apply order, one
private file per object that is whole or absent."""

from __future__ import annotations

import stat

import pytest

from k3s_backup.kube import manifests
from k3s_backup.kube.manifests import Manifest


@pytest.mark.parametrize("name", ["..", ".", "a/b", "", "-x", "a b"])
def test_a_name_that_is_no_plain_file_name_is_refused(name):
    with pytest.raises(ValueError, match="is not a plain file name"):
        manifests.relative_path(Manifest("configmaps", "default", name, {}), ".yaml")


def test_paths_are_resource_namespace_name_and_cluster_scoped_ones_skip_the_namespace():
    spec = Manifest("services/specs", "web", "front", {})
    assert str(manifests.relative_path(spec, ".yaml")) == "services-specs/web/front.yaml"
    role = Manifest("clusterroles", None, "reader", {})
    assert str(manifests.relative_path(role, ".json")) == "clusterroles/reader.json"


def test_namespaces_then_crds_then_helm_order_then_custom_resources():
    resources = [
        "widgets.example.com",
        "deployments",
        "secrets",
        "customresourcedefinitions.apiextensions.k8s.io",
        "namespaces",
    ]
    ranked = sorted(resources, key=lambda r: manifests.apply_rank(r, None, "x"))
    assert ranked == [
        "namespaces",
        "customresourcedefinitions.apiextensions.k8s.io",
        "secrets",
        "deployments",
        "widgets.example.com",
    ]


def test_a_manifest_file_is_private_and_never_written_over(tmp_path):
    path = tmp_path / "secrets" / "shop" / "db.yaml"
    manifests.write_private(path, b"kind: Secret\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with pytest.raises(FileExistsError):
        manifests.write_private(path, b"other")
    assert path.read_bytes() == b"kind: Secret\n"
