"""The table-driven decoder against values encoded by the tests from the API's field numbers."""

from __future__ import annotations

import base64
import contextlib
import random

import pytest

from k3s_backup.formats.k8s_objects import UndecodableError, decodable_kinds, decode_object
from tests.support import k8s_encoder as enc


@pytest.mark.parametrize("kind", sorted(enc.BUILT_INS))
def test_each_kind_decodes_to_what_kubectl_shows(kind):
    value, shown = enc.BUILT_INS[kind]()
    expected = {k: val for k, val in shown.items() if k != "status"}  # status is not decoded
    assert decode_object(value) == expected


def test_secret_data_is_every_byte_base64_and_maps_keep_empty_values():
    value, _shown = enc.secret("s", "ns", {"bin": bytes(range(256)), "empty": b""})
    data = decode_object(value)["data"]
    assert data == {"bin": base64.b64encode(bytes(range(256))).decode(), "empty": ""}


def test_pointer_fields_keep_false_and_zero_and_plain_zero_fields_are_left_out():
    value, _shown = enc.service_account("sa", "ns")
    decoded = decode_object(value)
    assert decoded["automountServiceAccountToken"] is False
    deployment = decode_object(enc.deployment("web", "ns")[0])
    assert "paused" not in deployment["spec"] and "minReadySeconds" not in deployment["spec"]
    assert "creationTimestamp" not in deployment["spec"]["template"]["metadata"]


def test_an_undecoded_pod_field_refuses_the_whole_object_and_names_the_field():
    with pytest.raises(UndecodableError, match=r"Deployment\.spec\.template\.spec\.affinity"):
        decode_object(enc.with_affinity("web", "ns"))


def test_objects_stored_before_kubernetes_1_25_with_their_empty_cluster_name_decode():
    """ObjectMeta field 15 (clusterName, a plain string until 1.25): written empty into every
    object an older API server stored, so clusters upgraded since still hold it."""
    meta, shown = enc.object_meta("old", "ns", labels={"app": "web"}, before_1_25=True)
    raw = enc.m(1, meta) + enc.string_map(2, {"k": "v"})
    decoded = decode_object(enc.wrap("v1", "ConfigMap", raw))
    expected = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": shown, "data": {"k": "v"}}
    assert decoded == expected
    assert "clusterName" not in decoded["metadata"]


def test_the_newest_pod_fields_decode_or_are_named():
    """PodSpec 41 (hostnameOverride, a *string) decodes; 42 (workloadRef) is named."""
    meta, shown = enc.object_meta("web-0", "ns")
    spec = enc.m(2, enc.s(1, "app"), enc.s(2, "busybox")) + enc.s(41, "web-0.example")
    pod = decode_object(enc.wrap("v1", "Pod", enc.m(1, meta) + enc.m(2, spec)))
    assert pod["metadata"] == shown
    assert pod["spec"] == {
        "containers": [{"image": "busybox", "name": "app"}],
        "hostnameOverride": "web-0.example",
    }
    grouped = spec + enc.m(42, enc.s(1, "training"), enc.s(2, "workers"))
    with pytest.raises(UndecodableError, match=r"^Pod\.spec\.workloadRef is not decoded$"):
        decode_object(enc.wrap("v1", "Pod", enc.m(1, meta) + enc.m(2, grouped)))


def test_an_unknown_field_number_refuses_the_object():
    value, _shown = enc.config_map("c", "ns", {"a": "b"})
    inner = enc.m(1, enc.s(1, "c")) + enc.s(99, "from the future")
    with pytest.raises(UndecodableError, match="field 99 of ConfigMap"):
        decode_object(enc.wrap("v1", "ConfigMap", inner))
    assert decode_object(value)["data"] == {"a": "b"}


def test_an_unknown_kind_is_named_with_the_kinds_we_read():
    value = enc.wrap("discovery.k8s.io/v1", "EndpointSlice", enc.m(1, enc.s(1, "x")))
    with pytest.raises(UndecodableError) as caught:
        decode_object(value)
    message = str(caught.value)
    assert "kind EndpointSlice (discovery.k8s.io/v1) is not one this decoder reads" in message
    assert all(kind in message for kind in decodable_kinds())
    assert "Secret (v1)" in decodable_kinds() and "Deployment (apps/v1)" in decodable_kinds()


def test_wrong_wire_types_and_bad_text_are_refused():
    with pytest.raises(UndecodableError, match=r"Secret\.type"):
        decode_object(enc.wrap("v1", "Secret", enc.m(1, enc.s(1, "x")) + enc.v(3, 7)))
    with pytest.raises(UndecodableError, match="not UTF-8"):
        decode_object(enc.wrap("v1", "Secret", enc.m(1, enc.b(1, b"\xff\xfe"))))


def test_damaged_values_raise_only_undecodable_error():
    """Every truncation and many byte flips of real values: an UndecodableError or an object,
    never another exception."""
    rng = random.Random(19)
    for build in enc.BUILT_INS.values():
        value, _shown = build()
        for cut in range(4, len(value), max(1, len(value) // 60)):
            with contextlib.suppress(UndecodableError):
                decode_object(value[:cut])
        for _ in range(150):
            damaged = bytearray(value)
            damaged[rng.randrange(4, len(value))] = rng.randrange(256)
            with contextlib.suppress(UndecodableError):
                decode_object(bytes(damaged))
