"""rbac.authorization.k8s.io/v1 (k8s.io/api/rbac/v1/generated.proto)."""

from __future__ import annotations

from k3s_backup.formats.k8s_api.fields import (
    Table,
    f,
    rep,
)

RBAC: dict[str, Table] = {
    "Role": {1: f("metadata", "ObjectMeta"), 2: rep("rules", "PolicyRule")},
    "ClusterRole": {
        1: f("metadata", "ObjectMeta"),
        2: rep("rules", "PolicyRule"),
        3: f("aggregationRule", "AggregationRule", ptr=True),
    },
    "PolicyRule": {
        1: rep("verbs"),
        2: rep("apiGroups"),
        3: rep("resources"),
        4: rep("resourceNames"),
        5: rep("nonResourceURLs"),
    },
    "AggregationRule": {1: rep("clusterRoleSelectors", "LabelSelector")},
    "RoleBinding": {
        1: f("metadata", "ObjectMeta"),
        2: rep("subjects", "Subject"),
        3: f("roleRef", "RoleRef"),
    },
    "Subject": {1: f("kind"), 2: f("apiGroup"), 3: f("name"), 4: f("namespace")},
    "RoleRef": {1: f("apiGroup"), 2: f("kind"), 3: f("name")},
}
