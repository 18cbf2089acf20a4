"""Stored objects turned into manifests `kubectl apply -f` takes: server fields removed, objects
in an order apply accepts, rendered as one YAML stream, a JSON List, or one file per object.
Pure: no I/O but the files `write_tree` is asked to write."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What the API server fills in; an object applied with them would be refused or misread.
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# Kinds that others need first (after Helm's install order): Namespaces and CRDs before all.
APPLY_ORDER = (
    "Namespace",
    "CustomResourceDefinition",
    "PriorityClass",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
)
_RANK = {kind: rank for rank, kind in enumerate(APPLY_ORDER)}
# The kind of each resource as etcd names it: the order is known before any value is read.
RESOURCE_KIND = {
    "namespaces": "Namespace",
    "customresourcedefinitions.apiextensions.k8s.io": "CustomResourceDefinition",
    "priorityclasses": "PriorityClass",
    "networkpolicies": "NetworkPolicy",
    "resourcequotas": "ResourceQuota",
    "limitranges": "LimitRange",
    "poddisruptionbudgets": "PodDisruptionBudget",
    "serviceaccounts": "ServiceAccount",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "storageclasses": "StorageClass",
    "persistentvolumes": "PersistentVolume",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "clusterroles": "ClusterRole",
    "clusterrolebindings": "ClusterRoleBinding",
    "roles": "Role",
    "rolebindings": "RoleBinding",
    "services/specs": "Service",
    "daemonsets": "DaemonSet",
    "pods": "Pod",
    "controllers": "ReplicationController",
    "replicasets": "ReplicaSet",
    "deployments": "Deployment",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "statefulsets": "StatefulSet",
    "jobs": "Job",
    "cronjobs": "CronJob",
    "ingressclasses": "IngressClass",
    "ingress": "Ingress",
    "apiservices.apiregistration.k8s.io": "APIService",
}
_SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")


@dataclass(frozen=True)
class Manifest:
    resource: str  # as inspect names it: "secrets", "widgets.example.com"
    namespace: str | None
    name: str
    body: dict[str, Any]


def strip_server_fields(body: dict[str, Any], keep_owner_references: bool) -> dict[str, Any]:
    """`body` without status and the metadata the server sets (a new dict; order kept)."""
    stripped = {key: value for key, value in body.items() if key != "status"}
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        dropped = set(SERVER_METADATA) | (set() if keep_owner_references else {"ownerReferences"})
        stripped["metadata"] = {k: v for k, v in metadata.items() if k not in dropped}
    return stripped


def controller_of(body: dict[str, Any]) -> str | None:
    """`Kind/name` of the controller that owns this object (a Pod's ReplicaSet), if any."""
    metadata = body.get("metadata")
    owners = metadata.get("ownerReferences") if isinstance(metadata, dict) else None
    for owner in owners if isinstance(owners, list) else []:
        if isinstance(owner, dict) and owner.get("controller") is True:
            return f"{owner.get('kind')}/{owner.get('name')}"
    return None


def apply_rank(resource: str, namespace: str | None, name: str) -> tuple[int, str, str, str]:
    """Sort key: Namespaces, CRDs, then Helm's install order; other resources (custom ones)
    last; then by resource, namespace, name."""
    kind = RESOURCE_KIND.get(resource)
    rank = _RANK[kind] if kind else len(APPLY_ORDER)
    return rank, resource, namespace or "", name


def yaml_stream(manifests: Iterable[Manifest]) -> str:
    """YAML documents, each starting `---`; libyaml's emitter where PyYAML was built with it
    (60x faster on long strings than the pure-Python one, which walks every character)."""
    import yaml

    documents = [m.body for m in manifests]
    options: dict[str, Any] = {
        "sort_keys": False,
        "default_flow_style": False,
        "allow_unicode": True,
        "explicit_start": True,
        "width": 1 << 16,
    }
    try:
        text = yaml.dump_all(
            documents, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), **options
        )
    except UnicodeEncodeError:  # libyaml refuses a lone surrogate; PyYAML's emitter escapes it
        text = yaml.dump_all(documents, Dumper=yaml.SafeDumper, **options)
    return str(text)


def json_text(body: dict[str, Any]) -> str:
    """UTF-8 as kubectl prints it; escaped where the text holds what UTF-8 cannot (a lone
    surrogate that JSON allowed in)."""
    text = json.dumps(body, indent=2, ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        text = json.dumps(body, indent=2)
    return text


def render_one(manifest: Manifest, output: str) -> str:
    if output == "json":
        return json_text(manifest.body) + "\n"
    return yaml_stream([manifest])


def safe_part(part: str) -> bool:
    return bool(_SAFE_PART.fullmatch(part)) and part not in (".", "..")


def relative_path(manifest: Manifest, suffix: str) -> Path:
    """`<resource>/<namespace>/<name><suffix>` (`<resource>/<name><suffix>` when cluster-scoped);
    ValueError for a part that is no plain file name."""
    resource = manifest.resource.replace("/", "-")  # services/specs
    parts = [resource, *([manifest.namespace] if manifest.namespace else []), manifest.name]
    unsafe = [part for part in parts if not safe_part(part)]
    if unsafe:
        raise ValueError(f"{unsafe[0]!r} is not a plain file name")
    return Path(*parts[:-1], parts[-1] + suffix)


def write_private(path: Path, data: bytes) -> None:
    """A new 0600 file (never over an existing one), in 0700 directories; OSError leaves no
    file behind."""
    missing = [folder for folder in path.parents if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
    except OSError:
        path.unlink(missing_ok=True)  # never half a manifest
        raise
