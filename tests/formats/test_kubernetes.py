"""Kubernetes keys and values as the API server stores them (values built by hand here)."""

from __future__ import annotations

import pytest

from k3s_backup.formats.kubernetes import ObjectKey, decode_value, parse_key
from tests.support.k8s_data import ENCRYPTED_SECRET, custom_resource, k8s_protobuf


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("/registry/pods/default/web", ObjectKey("pods", "default", "web")),
        ("/registry/namespaces/kube-system", ObjectKey("namespaces", None, "kube-system")),
        ("/registry/minions/k3s-05", ObjectKey("minions", None, "k3s-05")),
        (
            "/registry/services/specs/default/kubernetes",
            ObjectKey("services/specs", "default", "kubernetes"),
        ),
        (
            "/registry/apiregistration.k8s.io/apiservices/v1.apps",
            ObjectKey("apiservices.apiregistration.k8s.io", None, "v1.apps"),
        ),
        (
            "/registry/k3s.cattle.io/addons/kube-system/coredns",
            ObjectKey("addons.k3s.cattle.io", "kube-system", "coredns"),
        ),
        (
            "/registry/priorityclasses/system.node-critical",
            ObjectKey("priorityclasses", None, "system.node-critical"),
        ),
        ("/bootstrap/abc", None),
        ("/registry/health", None),
    ],
)
def test_keys_name_resource_namespace_and_name(key, expected):
    assert parse_key(key) == expected


def test_protobuf_envelope_decodes_to_type_and_object_meta():
    value = k8s_protobuf(
        "apps/v1", "Deployment", "web", "default", "uid-1", {"app": "web", "tier": "fe"}
    )
    obj = decode_value(value)
    assert (obj.encoding, obj.api_version, obj.kind) == ("protobuf", "apps/v1", "Deployment")
    assert (obj.name, obj.namespace, obj.uid) == ("web", "default", "uid-1")
    assert obj.labels == {"app": "web", "tier": "fe"}


def test_json_custom_resources_decode():
    obj = decode_value(custom_resource("Widget", "w1", "default", a="b"))
    assert (obj.encoding, obj.api_version, obj.kind, obj.name) == (
        "json",
        "example.com/v1",
        "Widget",
        "w1",
    )
    assert obj.labels == {"a": "b"}


def test_encrypted_values_are_named_not_guessed():
    obj = decode_value(ENCRYPTED_SECRET)
    assert (obj.encoding, obj.provider, obj.key_name) == ("encrypted", "aescbc", "aescbckey")
    assert obj.kind is None and obj.name is None


def test_a_damaged_envelope_says_so():
    obj = decode_value(b"k8s\x00\x0a\x7f")
    assert obj.encoding == "protobuf" and obj.problem and "undecodable" in obj.problem


def test_an_encrypted_value_whose_key_name_is_not_utf8_is_still_named():
    # Found by fuzzing (tests/fuzz/formats/test_kubernetes.py): a crash of every inspect.
    decoded = decode_value(b"k8s:enc:aescbc:v1:ae\x80key:" + bytes(range(32)))
    assert (decoded.encoding, decoded.provider) == ("encrypted", "aescbc")
    assert decoded.key_name == "ae\\x80key"
