"""`k3s-backup extract` on snapshots of a real etcd holding objects as the API server writes
them: protobuf built-ins encoded from the API's field numbers (tests/k8s_encoder.py), JSON custom
resources and CRDs, Secrets encrypted at rest with aescbc, aesgcm and secretbox."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.secret import SecretBox

from k3s_backup.catalogue import bundle
from k3s_backup.kube.manifests import APPLY_ORDER
from k3s_backup.lab.etcd import EtcdServer
from k3s_backup.lab.fake_kubectl import APPLIED_FILENAME
from tests.support import k8s_encoder as enc
from tests.support.cli_runner import invoke
from tests.support.faults import set_state, small_tmpfs

KEYS = {"aescbc": ("aescbckey", os.urandom(32)), "aesgcm": ("gcmkey", os.urandom(32))}
KEYS["secretbox"] = ("boxkey", os.urandom(32))
# Where each built-in of tests/k8s_encoder.py lives in etcd.
RESOURCE = {
    "Namespace": "namespaces",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Service": "services/specs",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "Ingress": "ingress",
    "Pod": "pods",
}


def encrypt(provider: str, key_name: str, key: bytes, plain: bytes, etcd_key: str) -> bytes:
    """A value as the API server encrypts it at rest (Kubernetes docs, "Encrypting
    Confidential Data at Rest"): `k8s:enc:<provider>:v1:<key name>:` + payload."""
    prefix = f"k8s:enc:{provider}:v1:{key_name}:".encode()
    if provider == "aescbc":  # 16-byte IV + AES-CBC, PKCS#7 padding
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return prefix + iv + encryptor.update(padded) + encryptor.finalize()
    if provider == "aesgcm":  # 12-byte nonce + ciphertext + tag; the etcd key authenticated
        nonce = os.urandom(12)
        return prefix + nonce + AESGCM(key).encrypt(nonce, plain, etcd_key.encode())
    nonce = os.urandom(24)  # secretbox: 24-byte nonce + NaCl secretbox
    return prefix + bytes(SecretBox(key).encrypt(plain, nonce))


def encryption_config(path: Path, keys: dict[str, tuple[str, bytes]]) -> Path:
    """An EncryptionConfiguration as K3s writes it (JSON), identity last."""
    providers: list[dict[str, Any]] = [
        {provider: {"keys": [{"name": name, "secret": base64.b64encode(key).decode()}]}}
        for provider, (name, key) in keys.items()
    ]
    document = {
        "kind": "EncryptionConfiguration",
        "apiVersion": "apiserver.config.k8s.io/v1",
        "resources": [{"resources": ["secrets"], "providers": [*providers, {"identity": {}}]}],
    }
    path.write_text(json.dumps(document))
    return path


def widget(name: str, ns: str, size: int) -> dict[str, Any]:
    """A custom resource as the API server stores it (JSON, server fields included)."""
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "resourceVersion": "",
            "generation": 3,
            "creationTimestamp": enc.CREATED_TEXT,
            "labels": {"size": str(size)},
            "managedFields": [{"manager": "kubectl", "operation": "Update"}],
        },
        "spec": {"zeta": size, "alpha": [1, 2, {"nested": None}], "text": "ü\n"},
        "status": {"ready": True},
    }


# An object mid-deletion, with every field the server sets and an owner that is no controller.
OWNERS = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "anchor", "uid": "uid-anchor"}]
SERVED = {
    "apiVersion": "example.com/v1",
    "kind": "Widget",
    "metadata": {
        "name": "leaving",
        "namespace": "served",
        "uid": "uid-leaving",
        "resourceVersion": "",
        "generation": 2,
        "creationTimestamp": enc.CREATED_TEXT,
        "selfLink": "/apis/example.com/v1/namespaces/served/widgets/leaving",
        "deletionTimestamp": enc.CREATED_TEXT,
        "deletionGracePeriodSeconds": 30,
        "finalizers": ["example.com/cleanup"],
        "ownerReferences": OWNERS,
        "managedFields": [{"manager": "kubectl", "operation": "Update"}],
    },
    "spec": {"a": 1},
    "status": {"phase": "Terminating"},
}

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com", "uid": "uid-crd", "generation": 1},
    "spec": {"group": "example.com", "names": {"plural": "widgets", "kind": "Widget"}},
    "status": {"acceptedNames": {"plural": "widgets"}},
}


@dataclass
class Snapshots:
    path: Path
    later: Path  # after deleting DELETED
    config: Path
    written: dict[str, dict[str, Any]] = field(default_factory=dict)  # etcd key -> shown
    secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)  # etcd key -> data
    bulk: list[str] = field(default_factory=list)  # etcd keys in namespace bulk
    stored: dict[str, bytes] = field(default_factory=dict)  # etcd key -> value


DELETED = ["/registry/secrets/shop/db", "/registry/example.com/widgets/bulk/w-0"]


def _put(etcd: EtcdServer, snaps: Snapshots, key: str, value: bytes) -> None:
    etcd.put(key, value)
    snaps.stored[key] = value


def _put_built_in(etcd, snaps, kind, build, ns_override=None):
    value, shown = build()
    name, ns = shown["metadata"]["name"], shown["metadata"].get("namespace")
    key = "/registry/" + RESOURCE[kind] + (f"/{ns}" if ns else "") + f"/{name}"
    _put(etcd, snaps, key, value)
    snaps.written[key] = shown
    return key


def _load_bulk(etcd: EtcdServer, snaps: Snapshots) -> None:
    """Namespace `bulk`: 50 objects of mixed kinds, protobuf and JSON."""
    snaps.bulk.append(_put_built_in(etcd, snaps, "Namespace", lambda: enc.namespace("bulk")))
    builders = [
        ("Secret", lambda i: enc.secret(f"s-{i}", "bulk", {"k": f"v{i}".encode()})),
        ("ConfigMap", lambda i: enc.config_map(f"c-{i}", "bulk", {"i": str(i)})),
        ("ServiceAccount", lambda i: enc.service_account(f"sa-{i}", "bulk")),
        ("Role", lambda i: enc.role(f"r-{i}", "bulk")),
        ("RoleBinding", lambda i: enc.role_binding(f"r-{i}", "bulk")),
        ("Service", lambda i: enc.service(f"svc-{i}", "bulk")),
        ("Deployment", lambda i: enc.deployment(f"d-{i}", "bulk")),
    ]
    for index in range(42):
        kind, build = builders[index % len(builders)]
        snaps.bulk.append(_put_built_in(etcd, snaps, kind, lambda b=build, i=index: b(i)))
    for index in range(7):
        key = f"/registry/example.com/widgets/bulk/w-{index}"
        body = widget(f"w-{index}", "bulk", index)
        _put(etcd, snaps, key, json.dumps(body).encode())
        snaps.written[key] = body
        snaps.bulk.append(key)


def _load_secrets(etcd: EtcdServer, snaps: Snapshots) -> None:
    """Namespace `vault`: one Secret per provider; namespace `broken`: keys we lack."""
    for provider, (key_name, key) in KEYS.items():
        data = {"password": os.urandom(64), "provider": provider.encode()}
        etcd_key = f"/registry/secrets/vault/{provider}"
        plain, _shown = enc.secret(provider, "vault", data)
        _put(etcd, snaps, etcd_key, encrypt(provider, key_name, key, plain, etcd_key))
        snaps.secrets[etcd_key] = data
    plain, _shown = enc.secret("x", "broken", {"a": b"b"})
    wrong = encrypt("aescbc", "aescbckey", os.urandom(32), plain, "")
    _put(etcd, snaps, "/registry/secrets/broken/wrong-key", wrong)
    missing = encrypt("secretbox", "rotated-away", os.urandom(32), plain, "")
    _put(etcd, snaps, "/registry/secrets/broken/missing-key", missing)
    _put(etcd, snaps, "/registry/secrets/broken/kms", b"k8s:enc:kms:v2:vault-kms:" + b"\x01" * 40)
    crafted = b"k8s:enc:aescbc:v1:aescbckey:" + b"\x00" * 5
    _put(etcd, snaps, "/registry/secrets/broken/crafted", crafted)
    deep = b'{"apiVersion": "v1", "kind": "Secret", "metadata": {}, "data": ' + b"[" * 100_000
    _put(etcd, snaps, "/registry/secrets/broken/deep", deep + b"]" * 100_000 + b"}")


def _load_odd(etcd: EtcdServer, snaps: Snapshots) -> None:
    """Namespace `odd`: a kind we do not decode, a Deployment with an undecoded field, a
    damaged value, and one ConfigMap that reads."""
    pdb = enc.wrap("policy/v1", "PodDisruptionBudget", enc.m(1, enc.s(1, "pdb"), enc.s(3, "odd")))
    _put(etcd, snaps, "/registry/poddisruptionbudgets/odd/pdb", pdb)
    _put(etcd, snaps, "/registry/deployments/odd/affine", enc.with_affinity("affine", "odd"))
    _put(etcd, snaps, "/registry/configmaps/odd/damaged", b"k8s\x00\x0a\xff\xff\xff")
    _put_built_in(etcd, snaps, "ConfigMap", lambda: enc.config_map("fine", "odd", {"a": "b"}))
    owned = enc.object_meta(
        "web-abc12", "owned", owner=("ReplicaSet", "web-abc"), owner_is_controller=True
    )
    template, _shown = enc.pod_template("web")
    spec = next(v for n, _w, v in enc_fields(template) if n == 2)
    pod = enc.wrap("v1", "Pod", enc.m(1, owned[0]) + enc.m(2, spec))
    _put(etcd, snaps, "/registry/pods/owned/web-abc12", pod)


def enc_fields(data: bytes):
    from k3s_backup.formats.protowire import fields

    return fields(data)


@pytest.fixture(scope="module")
def snaps(tmp_path_factory) -> Snapshots:
    if shutil.which("etcd") is None:
        pytest.skip("needs Debian's etcd-server and etcd-client")
    root = tmp_path_factory.mktemp("extract")
    result = Snapshots(root / "snap.db", root / "later.db", root / "encryption-config.json")
    encryption_config(result.config, KEYS)
    with EtcdServer(root / "etcd") as etcd:
        for kind, build in enc.BUILT_INS.items():
            _put_built_in(etcd, result, kind, build)
        crd_key = "/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com"
        _put(etcd, result, crd_key, json.dumps(CRD).encode())
        result.written[crd_key] = CRD
        _load_bulk(etcd, result)
        _load_secrets(etcd, result)
        _load_odd(etcd, result)
        etcd.put("/registry/events/shop/web.123", enc.wrap("v1", "Event", b""))
        etcd.put("/registry/example.com/widgets/served/leaving", json.dumps(SERVED).encode())
        lone = b'{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "u",'
        lone += b' "namespace": "text"}, "spec": {"s": "\\ud800 \xc3\xbc"}}'
        etcd.put("/registry/example.com/widgets/text/u", lone)
        etcd.snapshot_save(result.path)
        for key in DELETED:
            etcd.delete(key)
        etcd.snapshot_save(result.later)
    return result


def in_shop(snaps: Snapshots) -> list[str]:
    """The keys written in namespace shop, and the Namespace itself."""
    return [
        key
        for key in snaps.written
        if key == "/registry/namespaces/shop" or key.split("/")[-2] == "shop"
    ]


def canonical(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True)


def extract(snaps: Snapshots, *args: str):
    return invoke(["extract", str(snaps.path), *args])


def items(result) -> list[dict[str, Any]]:
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["apiVersion"], document["kind"]) == ("v1", "List")
    return document["items"]


def test_every_built_in_kind_comes_back_as_written_minus_server_fields(snaps):
    found = items(extract(snaps, "--namespace", "shop", "-o", "json"))
    expected = [enc.without_server_fields(snaps.written[key]) for key in in_shop(snaps)]
    assert sorted(found, key=canonical) == sorted(expected, key=canonical)
    assert found[0]["kind"] == "Namespace"  # the Namespace itself first
    for obj in found:
        assert "status" not in obj
        assert not {
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
        } & set(obj["metadata"])


def test_cluster_scoped_objects_are_selected_by_resource_and_name(snaps):
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        found = items(
            extract(snaps, "--resource", RESOURCE[kind], "--name", "cluster-reader", "-o", "json")
        )
        assert found == [enc.without_server_fields(enc.BUILT_INS[kind]()[1])]


def test_a_secret_comes_back_byte_for_byte(snaps):
    [secret] = items(extract(snaps, "-n", "shop", "--resource", "secrets", "-o", "json"))
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert data == {"password": bytes(range(256)), "user": b"admin"}
    assert secret["metadata"] == {
        "name": "db",
        "namespace": "shop",
        "annotations": {"note": "keep"},
    }


def test_yaml_stream_equals_the_json_and_kubectl_reads_it_as_documents(snaps):
    as_yaml = extract(snaps, "--namespace", "shop")
    assert as_yaml.code == 0, as_yaml.stderr
    documents = list(yaml.safe_load_all(as_yaml.stdout))
    assert documents == items(extract(snaps, "--namespace", "shop", "-o", "json"))
    assert as_yaml.stdout.startswith("---\n")


def test_a_namespace_of_fifty_mixed_objects_comes_back_complete_in_apply_order(snaps):
    found = items(extract(snaps, "--namespace", "bulk", "-o", "json"))
    assert len(found) == len(snaps.bulk) == 50
    expected = {canonical(enc.without_server_fields(snaps.written[k])) for k in snaps.bulk}
    assert {canonical(obj) for obj in found} == expected
    ranks = [
        APPLY_ORDER.index(obj["kind"]) if obj["kind"] in APPLY_ORDER else len(APPLY_ORDER)
        for obj in found
    ]
    assert ranks == sorted(ranks)
    assert found[0]["kind"] == "Namespace" and found[-1]["kind"] == "Widget"


def test_everything_puts_namespaces_then_crds_first_and_leaves_events_out(snaps):
    result = extract(snaps, "--encryption-config", str(snaps.config), "-o", "json")
    assert result.code == 3  # the odd and broken objects are named, the rest written
    kinds = [obj["kind"] for obj in json.loads(result.stdout)["items"]]
    first_other = next(i for i, kind in enumerate(kinds) if kind != "Namespace")
    assert set(kinds[:first_other]) == {"Namespace"}
    assert kinds[first_other] == "CustomResourceDefinition"
    assert "Event" not in kinds


def test_custom_resources_come_back_exactly_as_stored_minus_server_fields(snaps):
    [found] = items(
        extract(snaps, "--resource", "widgets.example.com", "--name", "w-3", "-o", "json")
    )
    stored = widget("w-3", "bulk", 3)
    assert found["spec"] == stored["spec"]
    assert list(found["spec"]) == ["zeta", "alpha", "text"]  # the stored order
    assert found["metadata"] == {"name": "w-3", "namespace": "bulk", "labels": {"size": "3"}}
    assert "status" not in found
    [crd] = items(
        extract(snaps, "--resource", "customresourcedefinitions.apiextensions.k8s.io", "-o", "json")
    )
    assert crd == {
        "apiVersion": CRD["apiVersion"],
        "kind": CRD["kind"],
        "metadata": {"name": "widgets.example.com"},
        "spec": CRD["spec"],
    }


def test_every_server_set_field_and_plain_owner_references_go_unless_kept(snaps):
    [found] = items(extract(snaps, "-n", "served", "-o", "json"))
    assert found == {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {
            "name": "leaving",
            "namespace": "served",
            "finalizers": ["example.com/cleanup"],
        },
        "spec": {"a": 1},
    }
    [kept] = items(extract(snaps, "-n", "served", "--keep-owner-references", "-o", "json"))
    assert kept["metadata"]["ownerReferences"] == OWNERS
    assert "deletionTimestamp" not in kept["metadata"] and "status" not in kept


@pytest.mark.parametrize("provider", sorted(KEYS))
def test_secrets_encrypted_at_rest_are_decrypted_with_the_encryption_config(snaps, provider):
    args = ["-n", "vault", "--name", provider, "--encryption-config", str(snaps.config)]
    [secret] = items(extract(snaps, *args, "-o", "json"))
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert data == snaps.secrets[f"/registry/secrets/vault/{provider}"]


def test_encrypted_values_without_the_right_key_are_named_with_their_key(snaps, tmp_path):
    args = ["-n", "broken", "--encryption-config", str(snaps.config)]
    result = extract(snaps, *args)
    assert result.code == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert (
        "not extracted: /registry/secrets/broken/wrong-key: encrypted at rest with aescbc key"
        f" 'aescbckey': the key of that name in {snaps.config} does not decrypt it"
    ) in result.stderr
    assert (
        "/registry/secrets/broken/missing-key: encrypted at rest with secretbox key"
        f" 'rotated-away': {snaps.config} holds no secretbox key of that name"
    ) in result.stderr
    assert (
        "/registry/secrets/broken/kms: encrypted at rest with kms key 'vault-kms': a KMS"
        " provider's key stays in the KMS, so it cannot be decrypted offline"
    ) in result.stderr
    assert "/registry/secrets/broken/crafted: encrypted at rest with aescbc key" in result.stderr
    assert "/registry/secrets/broken/deep: JSON nested deeper than 200 levels" in result.stderr


def test_the_encryption_config_is_read_from_a_restore_bundle(snaps, tmp_path):
    made = bundle.Bundle(
        snapshot="k3s-lab-20261123-020000-k3s-05-1795399200",
        node="k3s-05",
        k3s_version="v1.33.4+k3s1",
        token="K10abc::server:secret",
        created="2026-11-23T02:00:00+00:00",
        config_files={bundle.ENCRYPTION_CONFIG: snaps.config.read_bytes()},
    )
    path = tmp_path / "k3s-lab.bundle.tar"
    bundle.write(made, path)
    args = ["-n", "vault", "--name", "secretbox", "--encryption-config", str(path), "-o", "json"]
    [secret] = items(extract(snaps, *args))
    assert (
        base64.b64decode(secret["data"]["password"])
        == (snaps.secrets["/registry/secrets/vault/secretbox"]["password"])
    )
    bundle.write(dataclasses.replace(made, config_files={}), path)
    result = extract(snaps, *args)
    assert result.code == 1
    assert f"{path}: this restore bundle holds no encryption-config.json" in result.stderr


def test_an_encrypted_secret_without_an_encryption_config_says_how_to_give_one(snaps, tmp_path):
    missing = tmp_path / "nope.json"
    result = extract(snaps, "-n", "vault", "--name", "aescbc", "--encryption-config", str(missing))
    assert result.code == 1
    assert (
        "/registry/secrets/vault/aescbc: encrypted at rest with aescbc key 'aescbckey': cannot"
        f" read the encryption config {missing}: No such file or directory (give the right one"
        " with --encryption-config)"
    ) in result.stderr


def test_undecodable_kinds_are_named_and_the_rest_written(snaps):
    result = extract(snaps, "-n", "odd", "-o", "json")
    assert result.code == 3
    [fine] = json.loads(result.stdout)["items"]
    assert fine["metadata"]["name"] == "fine"
    assert (
        "not extracted: /registry/poddisruptionbudgets/odd/pdb: kind PodDisruptionBudget"
        " (policy/v1) is not one this decoder reads; it reads ClusterRole"
        " (rbac.authorization.k8s.io/v1), ClusterRoleBinding (rbac.authorization.k8s.io/v1),"
        " ConfigMap (v1), CronJob (batch/v1), DaemonSet (apps/v1), Deployment (apps/v1)"
    ) in result.stderr
    assert (
        "not extracted: /registry/deployments/odd/affine:"
        " Deployment.spec.template.spec.affinity is not decoded"
    ) in result.stderr
    assert "not extracted: /registry/configmaps/odd/damaged: damaged protobuf" in result.stderr
    assert "--raw --out DIR" in result.stderr
    only_pdb = extract(snaps, "-n", "odd", "--resource", "poddisruptionbudgets")
    assert only_pdb.code == 1 and only_pdb.stdout == ""


def test_raw_writes_the_stored_bytes_of_what_is_not_decoded(snaps, tmp_path):
    out = tmp_path / "out"
    result = extract(snaps, "-n", "odd", "--out", str(out), "--raw")
    assert result.code == 3
    raw = out / "poddisruptionbudgets" / "odd" / "pdb.raw"
    assert raw.read_bytes() == snaps.stored["/registry/poddisruptionbudgets/odd/pdb"]
    assert (out / "configmaps" / "odd" / "fine.yaml").is_file()
    assert not (out / "deployments" / "odd" / "affine.yaml").exists()  # never half-decoded


def test_out_writes_one_private_file_per_object(snaps, tmp_path):
    out = tmp_path / "out"
    result = extract(snaps, "--namespace", "shop", "--out", str(out))
    assert result.code == 0, result.stderr
    secret = out / "secrets" / "shop" / "db.yaml"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "secrets").stat().st_mode) == 0o700
    assert yaml.safe_load(secret.read_text())["data"]["user"] == "YWRtaW4="
    assert (out / "namespaces" / "shop.yaml").is_file()
    assert (out / "services-specs" / "shop" / "web.yaml").is_file()
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert len(files) == len(in_shop(snaps))
    again = extract(snaps, "--namespace", "shop", "--out", str(out))
    assert again.code == 2 and "not an empty directory" in again.stderr


def test_objects_a_controller_owns_are_skipped_unless_owner_references_are_kept(snaps):
    result = extract(snaps, "-n", "owned", "-o", "json")
    assert result.code == 1
    assert (
        "skipped: /registry/pods/owned/web-abc12 (owned by ReplicaSet/web-abc, which recreates"
        " it); --keep-owner-references extracts it"
    ) in result.stderr
    [pod] = items(extract(snaps, "-n", "owned", "--keep-owner-references", "-o", "json"))
    assert pod["metadata"]["ownerReferences"][0]["name"] == "web-abc"
    assert pod["spec"]["containers"][0]["image"] == "registry.example/web:1.2"


def test_deleted_since_gives_what_the_later_snapshot_lacks(snaps):
    found = items(extract(snaps, "--deleted-since", str(snaps.later), "-o", "json"))
    assert {(obj["kind"], obj["metadata"]["name"]) for obj in found} == {
        ("Secret", "db"),
        ("Widget", "w-0"),
    }
    none = invoke(["extract", str(snaps.later), "--deleted-since", str(snaps.path)])
    assert none.code == 1 and "no object in" in none.stderr


def test_deleted_since_a_snapshot_without_kubernetes_objects_is_refused(snaps, tmp_path):
    with EtcdServer(tmp_path / "etcd") as etcd:
        etcd.put("/bootstrap/abc", b"not kubernetes")
        empty = etcd.snapshot_save(tmp_path / "empty.db")
    result = extract(snaps, "--deleted-since", str(empty))
    assert result.code == 1 and result.stdout == ""
    assert f"error: {empty} holds no Kubernetes objects" in result.stderr


def test_text_utf8_cannot_carry_is_escaped_not_a_crash(snaps):
    for output in ("json", "yaml"):
        result = extract(snaps, "-n", "text", "-o", output)
        assert result.code == 0, result.stderr
        result.stdout.encode()  # what a UTF-8 terminal or file receives
        document = json.loads(result.stdout)["items"][0] if output == "json" else None
        document = document or next(yaml.safe_load_all(result.stdout))
        assert document["spec"] == {"s": "\ud800 ü"}


def test_usage_errors(snaps, tmp_path):
    assert extract(snaps, "--raw").code == 2
    assert extract(snaps, "--overwrite").code == 2
    apply_out = extract(snaps, "--apply", "--out", str(tmp_path / "out"))
    assert apply_out.code == 2 and "--apply and --out cannot be combined" in apply_out.stderr
    nothing = extract(snaps, "-n", "no-such-namespace")
    assert nothing.code == 1
    assert f"error: no object in {snaps.path} matches the selection" in nothing.stderr


# ---- --apply, through the stand-in `k3s kubectl` ---------------------------------------------


def _applied(lab) -> list[dict[str, Any]]:
    record = lab.bin_dir / APPLIED_FILENAME
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


@pytest.fixture
def backed_up(lab, tmp_path):
    """A lab cluster with namespace shop (a Secret, a ConfigMap) backed up by a real `run`;
    then the Secret deleted live, as by a bad deploy."""
    for kind in ("Namespace", "Secret", "ConfigMap"):
        value, _shown = enc.BUILT_INS[kind]()
        key = {"Namespace": "/registry/namespaces/shop"}.get(
            kind, f"/registry/{RESOURCE[kind]}/shop/{_shown['metadata']['name']}"
        )
        lab.etcd.put(key, value)
    config = lab.write_config(tmp_path / "config.toml")
    run = invoke(["--config", str(config), "run"], environ=lab.env())
    assert run.code == 0, run.stderr
    lab.etcd.delete("/registry/secrets/shop/db")
    return config


@pytest.mark.parametrize("how", ["name", "prefix"])
def test_a_snapshot_named_or_prefixed_is_fetched_from_the_target_and_verified(lab, backed_up, how):
    [local] = [p for p in lab.snapshot_dir.iterdir() if p.name.startswith("k3s-lab-")]
    local.unlink()  # only the copy on the backup host is left
    wanted = local.name if how == "name" else local.name[: len("k3s-lab-20261123")]
    args = ["--config", str(backed_up), "extract", wanted, "-n", "shop", "-o", "json"]
    result = invoke([*args, "--resource", "secrets"], environ=lab.env())
    assert result.code == 0, result.stderr
    [secret] = items(result)
    assert secret == enc.without_server_fields(enc.BUILT_INS["Secret"]()[1])


def test_apply_dry_runs_on_the_server_then_applies_and_reports_each_object(lab, backed_up):
    args = ["--config", str(backed_up), "extract", "latest", "-n", "shop", "--resource"]
    result = invoke([*args, "secrets", "--apply"], environ=lab.env())
    assert result.code == 0, result.stderr
    assert result.lines == ["applied  secret/db created"]
    dry, real = _applied(lab)
    assert dry["args"] == ["--dry-run=server", "-f", "-"] and real["args"] == ["-f", "-"]
    assert dry["stdin"] == real["stdin"]
    [secret] = list(yaml.safe_load_all(real["stdin"]))
    assert secret == enc.without_server_fields(enc.BUILT_INS["Secret"]()[1])


def test_apply_refuses_objects_that_exist_live_unless_overwrite(lab, backed_up):
    args = ["--config", str(backed_up), "extract", "latest", "-n", "shop", "--apply"]
    refused = invoke(args, environ=lab.env())
    assert refused.code == 1
    assert "exists live: namespaces shop\n" in refused.stderr
    assert "exists live: configmaps web-config in shop\n" in refused.stderr
    assert "error: nothing applied: 2 of the objects exist live; --overwrite replaces" in (
        refused.stderr
    )
    assert _applied(lab) == []
    overwritten = invoke([*args, "--overwrite"], environ=lab.env())
    assert overwritten.code == 0, overwritten.stderr
    assert overwritten.lines == [
        "applied  namespace/shop configured",
        "applied  secret/db created",
        "applied  configmap/web-config configured",
    ]


def test_apply_applies_nothing_when_an_object_could_not_be_extracted(lab, tmp_path):
    lab.etcd.put("/registry/secrets/shop/sealed", b"k8s:enc:aescbc:v1:aescbckey:" + bytes(32))
    lab.etcd.put("/registry/configmaps/shop/c", enc.config_map("c", "shop", {"a": "b"})[0])
    config = lab.write_config(tmp_path / "config.toml")
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 0
    args = ["--config", str(config), "extract", "latest", "-n", "shop", "--apply"]
    result = invoke(args, environ=lab.env())
    assert result.code == 1
    assert (
        "not extracted: /registry/secrets/shop/sealed: encrypted at rest with aescbc key"
        f" 'aescbckey': cannot read the encryption config {lab.data_dir}/server/cred/"
        "encryption-config.json: No such file or directory (give the right one with"
        " --encryption-config)"
    ) in result.stderr
    assert "nothing applied: not every selected object was extracted" in result.stderr
    assert _applied(lab) == []


def test_keys_come_from_k3s_encryption_config_under_the_data_dir_by_default(lab, tmp_path):
    config_file = bundle.encryption_config_path(lab.data_dir)
    config_file.parent.mkdir(parents=True, exist_ok=True)
    encryption_config(config_file, KEYS)
    key_name, key = KEYS["secretbox"]
    plain, _shown = enc.secret("sealed", "vault", {"token": b"s3cret"})
    etcd_key = "/registry/secrets/vault/sealed"
    lab.etcd.put(etcd_key, encrypt("secretbox", key_name, key, plain, etcd_key))
    config = lab.write_config(tmp_path / "config.toml")
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 0
    args = ["--config", str(config), "extract", "latest", "-n", "vault", "-o", "json"]
    [secret] = items(invoke(args, environ=lab.env()))
    assert base64.b64decode(secret["data"]["token"]) == b"s3cret"


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "zip"])
def test_deleted_since_live_compares_with_a_snapshot_taken_now_then_removed(
    lab, backed_up, compressed
):
    set_state(lab, compress_default=compressed)  # K3s's etcd-snapshot-compress
    snapshots_before = sorted(p.name for p in lab.snapshot_dir.iterdir())
    args = ["--config", str(backed_up), "extract", "latest", "--deleted-since", "live"]
    result = invoke([*args, "-o", "json"], environ=lab.env())
    assert result.code == 0, result.stderr
    [secret] = json.loads(result.stdout)["items"]  # the one deleted live since the backup
    assert secret == enc.without_server_fields(enc.BUILT_INS["Secret"]()[1])
    assert "warning" not in result.stderr
    # The snapshot taken for it is gone: nothing new beside K3s's snapshots or in state_dir.
    assert sorted(p.name for p in lab.snapshot_dir.iterdir()) == snapshots_before
    assert not list((lab.root / "state").glob("live-*"))


def test_deleted_since_live_removes_its_snapshot_when_extract_fails(lab, backed_up):
    args = ["--config", str(backed_up), "extract", "latest", "--deleted-since", "live"]
    result = invoke([*args, "-n", "no-such-namespace"], environ=lab.env())
    assert result.code == 1 and "no object in" in result.stderr
    assert not list((lab.root / "state").glob("live-*"))


def test_deleted_since_live_with_k3s_down_fails_and_leaves_nothing(lab, backed_up):
    set_state(lab, service_active=False)
    args = ["--config", str(backed_up), "extract", "latest", "--deleted-since", "live"]
    result = invoke(args, environ=lab.env())
    assert result.code == 1, result.stderr
    assert "`k3s etcd-snapshot save` failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((lab.root / "state").glob("live-*"))


def test_a_full_disk_under_out_leaves_only_whole_files_and_names_the_rest(snaps, tmp_path):
    out = tmp_path / "out"
    with small_tmpfs(out, "24k"):
        result = extract(snaps, "--namespace", "bulk", "--out", str(out))
        files = [p for p in out.rglob("*") if p.is_file()]
        whole = [yaml.safe_load(p.read_text()) for p in files]
    assert result.code == 3
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
    assert 0 < len(files) < 50
    expected = {canonical(enc.without_server_fields(snaps.written[k])) for k in snaps.bulk}
    assert all(canonical(doc) in expected for doc in whole)  # each file whole, none half
    refused = [line for line in result.stderr.splitlines() if line.startswith("not extracted:")]
    assert len(refused) + len(files) == 50
