"""Kubernetes-like data written into a real etcd by the tests of inspect, diff and drill:
protobuf-enveloped built-ins (a runtime.Unknown encoded by hand), JSON custom resources, an
encrypted Secret, several revisions of one key, deleted keys and a compaction."""

from __future__ import annotations

import base64
import json
from typing import Any

from k3s_backup.formats.protowire import encode_bytes, encode_varint
from k3s_backup.lab.etcd import EtcdServer, etcdctl

ENCRYPTED_SECRET = b"k8s:enc:aescbc:v1:aescbckey:" + bytes(range(256))


def k8s_protobuf(
    api_version: str,
    kind: str,
    name: str,
    namespace: str = "",
    uid: str = "",
    labels: dict[str, str] | None = None,
) -> bytes:
    """`k8s\\x00` + runtime.Unknown{typeMeta{apiVersion, kind}, raw{ObjectMeta...}}."""
    meta = encode_bytes(1, name.encode())
    if namespace:
        meta += encode_bytes(3, namespace.encode())
    if uid:
        meta += encode_bytes(5, uid.encode())
    for key, value in (labels or {}).items():
        meta += encode_bytes(11, encode_bytes(1, key.encode()) + encode_bytes(2, value.encode()))
    raw = encode_bytes(1, meta) + encode_bytes(2, b"spec-bytes")
    type_meta = encode_bytes(1, api_version.encode()) + encode_bytes(2, kind.encode())
    unknown = (
        encode_bytes(1, type_meta)
        + encode_bytes(2, raw)
        + encode_bytes(4, b"application/vnd.kubernetes.protobuf")
    )
    return b"k8s\x00" + unknown


def namespace(name: str, uid: str, created: int) -> bytes:
    """A Namespace as the API server stores it: `k8s\\x00` + runtime.Unknown, with the
    ObjectMeta's name (1), uid (5) and creationTimestamp (8: Time{seconds 1})."""
    seconds = encode_varint(1 << 3 | 0) + encode_varint(created)
    meta = encode_bytes(1, name.encode()) + encode_bytes(5, uid.encode()) + encode_bytes(8, seconds)
    type_meta = encode_bytes(1, b"v1") + encode_bytes(2, b"Namespace")
    return b"k8s\x00" + encode_bytes(1, type_meta) + encode_bytes(2, encode_bytes(1, meta))


def custom_resource(kind: str, name: str, namespace: str | None, **labels: str) -> bytes:
    metadata: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "labels": labels}
    if namespace:
        metadata["namespace"] = namespace
    return json.dumps({"apiVersion": "example.com/v1", "kind": kind, "metadata": metadata}).encode()


def load_cluster(etcd: EtcdServer) -> int:
    """Write the data; the revision history was compacted at."""
    for ns in ("default", "kube-system"):
        etcd.put(f"/registry/namespaces/{ns}", k8s_protobuf("v1", "Namespace", ns, uid=f"ns-{ns}"))
    for index in range(1, 4):
        name = f"web-{index}"
        value = k8s_protobuf("v1", "Pod", name, "default", f"uid-{name}", {"app": "web"})
        etcd.put(f"/registry/pods/default/{name}", value)
    for version in range(3):  # several revisions of the same key
        value = k8s_protobuf(
            "v1", "ConfigMap", "coredns", "kube-system", "uid-cm", {"v": str(version)}
        )
        etcd.put("/registry/configmaps/kube-system/coredns", value)
    etcd.put("/registry/configmaps/kube-system/old", k8s_protobuf("v1", "ConfigMap", "old"))
    etcd.put("/registry/secrets/default/db", ENCRYPTED_SECRET)
    etcd.put("/registry/example.com/widgets/default/w1", custom_resource("Widget", "w1", "default"))
    etcd.put("/registry/example.com/gadgets/g1", custom_resource("Gadget", "g1", None, a="b"))
    etcd.put(
        "/registry/services/specs/default/kubernetes",
        k8s_protobuf("v1", "Service", "kubernetes", "default"),
    )
    etcd.put("/bootstrap/abc123", b"not kubernetes")
    compacted = compact(etcd)
    etcd.delete("/registry/pods/default/web-3")
    etcd.delete("/registry/configmaps/kube-system/old")
    etcd.put(
        "/registry/pods/default/web-2",
        k8s_protobuf("v1", "Pod", "web-2", "default", "uid-web-2", {"app": "web", "x": "y"}),
    )
    return compacted


def compact(etcd: EtcdServer) -> int:
    revision = live_revision_and_keys(etcd)[0]
    etcdctl(["compact", str(revision)], endpoint=etcd.endpoint)
    return revision


def live_revision_and_keys(etcd: EtcdServer) -> tuple[int, set[str]]:
    """What etcd itself reports: `etcdctl get "" --prefix --keys-only -w json`."""
    reply = json.loads(
        etcdctl(["get", "", "--prefix", "--keys-only", "-w", "json"], endpoint=etcd.endpoint)
    )
    keys = {base64.b64decode(kv["key"]).decode() for kv in reply.get("kvs", [])}
    return int(reply["header"]["revision"]), keys
