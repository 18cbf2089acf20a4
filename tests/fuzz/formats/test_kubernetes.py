"""Fuzz: the values and keys of a snapshot as inspect decodes them (formats/kubernetes,
formats/protowire, the KeyValue decoders of formats/etcd_db)."""

from __future__ import annotations

import contextlib
import json

from hypothesis import strategies as st

from k3s_backup.formats import kubernetes
from k3s_backup.formats.etcd_db import decode_key_value, scan_key_value
from k3s_backup.formats.protowire import ProtoError, fields
from tests.fuzz.harness import fuzz_target, mutated
from tests.fuzz.make_corpus import _timestamped_pod
from tests.support.bolt_files import key_value
from tests.support.k8s_data import ENCRYPTED_SECRET, custom_resource, k8s_protobuf

VALUES = [
    k8s_protobuf("v1", "Pod", "web-1", "default", "uid-web-1", {"app": "web"}),
    _timestamped_pod(),
    custom_resource("Widget", "w1", "default", a="b"),
    ENCRYPTED_SECRET,
    b"not kubernetes",
]
KEY_VALUES = [key_value(b"/registry/pods/default/web-1", value) for value in VALUES]
_TEXT_FIELDS = ("api_version", "kind", "name", "namespace", "uid", "creation_timestamp")


@fuzz_target(st.one_of(mutated(VALUES, page=64), st.binary(max_size=256)), examples=600)
def test_values(data: bytes) -> None:
    decoded = kubernetes.decode_value(data)  # total: never raises
    assert decoded.encoding in (kubernetes.JSON, kubernetes.PROTOBUF, kubernetes.ENCRYPTED, "raw")
    for name in _TEXT_FIELDS:
        assert isinstance(getattr(decoded, name), str | None), name
    json.dumps(decoded.labels)
    with contextlib.suppress(ProtoError):
        list(fields(data))


@fuzz_target(st.one_of(mutated(KEY_VALUES, page=64), st.binary(max_size=256)), examples=300)
def test_key_values(data: bytes) -> None:
    with contextlib.suppress(ProtoError):
        decode_key_value(data)
    try:
        key, *_numbers, start, end = scan_key_value(data)
    except ProtoError:
        return
    assert key and 0 <= start <= end <= len(data)
    kubernetes.parse_key(key.decode(errors="backslashreplace"))
