"""apimachinery's meta/v1: the metadata every object carries, and label selectors."""

from __future__ import annotations

from k3s_backup.formats.k8s_api.fields import (
    BOOL,
    FIELDS_V1,
    INT,
    TIME,
    Table,
    f,
    mapping,
    rep,
)

META: dict[str, Table] = {
    "ObjectMeta": {
        1: f("name"),
        2: f("generateName"),
        3: f("namespace"),
        4: f("selfLink"),
        5: f("uid"),
        6: f("resourceVersion"),
        7: f("generation", INT),
        8: f("creationTimestamp", TIME),
        9: f("deletionTimestamp", TIME, ptr=True),
        10: f("deletionGracePeriodSeconds", INT, ptr=True),
        11: mapping("labels"),
        12: mapping("annotations"),
        13: rep("ownerReferences", "OwnerReference"),
        14: rep("finalizers"),
        # Removed in Kubernetes 1.25, but Go wrote it (empty) into every object an API server
        # up to 1.24 stored: objects not rewritten since an upgrade still carry it.
        15: f("clusterName"),
        17: rep("managedFields", "ManagedFieldsEntry"),
    },
    "OwnerReference": {
        1: f("kind"),
        3: f("name"),
        4: f("uid"),
        5: f("apiVersion"),
        6: f("controller", BOOL, ptr=True),
        7: f("blockOwnerDeletion", BOOL, ptr=True),
    },
    "ManagedFieldsEntry": {
        1: f("manager"),
        2: f("operation"),
        3: f("apiVersion"),
        4: f("time", TIME, ptr=True),
        6: f("fieldsType"),
        7: f("fieldsV1", FIELDS_V1, ptr=True),
        8: f("subresource"),
    },
    "LabelSelector": {
        1: mapping("matchLabels"),
        2: rep("matchExpressions", "LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {1: f("key"), 2: f("operator"), 3: rep("values")},
}
