"""core/v1 (k8s.io/api/core/v1/generated.proto): the objects of the core group, Pods' spec
aside (pod.py)."""

from __future__ import annotations

from k3s_backup.formats.k8s_api.fields import (
    BOOL,
    BYTES,
    INT,
    INT_OR_STRING,
    QUANTITY,
    Table,
    f,
    mapping,
    rep,
    skip,
    status,
)

CORE: dict[str, Table] = {
    "Namespace": {1: f("metadata", "ObjectMeta"), 2: f("spec", "NamespaceSpec"), 3: status()},
    "NamespaceSpec": {1: rep("finalizers")},
    "Secret": {
        1: f("metadata", "ObjectMeta"),
        2: mapping("data", BYTES),
        3: f("type"),
        4: mapping("stringData"),
        5: f("immutable", BOOL, ptr=True),
    },
    "ConfigMap": {
        1: f("metadata", "ObjectMeta"),
        2: mapping("data"),
        3: mapping("binaryData", BYTES),
        4: f("immutable", BOOL, ptr=True),
    },
    "ServiceAccount": {
        1: f("metadata", "ObjectMeta"),
        2: rep("secrets", "ObjectReference"),
        3: rep("imagePullSecrets", "LocalObjectReference"),
        4: f("automountServiceAccountToken", BOOL, ptr=True),
    },
    "ObjectReference": {
        1: f("kind"),
        2: f("namespace"),
        3: f("name"),
        4: f("uid"),
        5: f("apiVersion"),
        6: f("resourceVersion"),
        7: f("fieldPath"),
    },
    "LocalObjectReference": {1: f("name")},
    "TypedLocalObjectReference": {1: f("apiGroup", ptr=True), 2: f("kind"), 3: f("name")},
    "TypedObjectReference": {
        1: f("apiGroup", ptr=True),
        2: f("kind"),
        3: f("name"),
        4: f("namespace", ptr=True),
    },
    "Service": {1: f("metadata", "ObjectMeta"), 2: f("spec", "ServiceSpec"), 3: status()},
    "ServiceSpec": {
        1: rep("ports", "ServicePort"),
        2: mapping("selector"),
        3: f("clusterIP"),
        4: f("type"),
        5: rep("externalIPs"),
        7: f("sessionAffinity"),
        8: f("loadBalancerIP"),
        9: rep("loadBalancerSourceRanges"),
        10: f("externalName"),
        11: f("externalTrafficPolicy"),
        12: f("healthCheckNodePort", INT),
        13: f("publishNotReadyAddresses", BOOL),
        14: f("sessionAffinityConfig", "SessionAffinityConfig", ptr=True),
        15: skip("ipFamily"),  # removed before v1.20; named if an old object has it
        16: skip("topologyKeys"),  # removed in v1.22
        17: f("ipFamilyPolicy", ptr=True),
        18: rep("clusterIPs"),
        19: rep("ipFamilies"),
        20: f("allocateLoadBalancerNodePorts", BOOL, ptr=True),
        21: f("loadBalancerClass", ptr=True),
        22: f("internalTrafficPolicy", ptr=True),
        23: f("trafficDistribution", ptr=True),
    },
    "ServicePort": {
        1: f("name"),
        2: f("protocol"),
        3: f("port", INT),
        4: f("targetPort", INT_OR_STRING),
        5: f("nodePort", INT),
        6: f("appProtocol", ptr=True),
    },
    "SessionAffinityConfig": {1: f("clientIP", "ClientIPConfig", ptr=True)},
    "ClientIPConfig": {1: f("timeoutSeconds", INT, ptr=True)},
    "PersistentVolumeClaim": {
        1: f("metadata", "ObjectMeta"),
        2: f("spec", "PersistentVolumeClaimSpec"),
        3: status(),
    },
    "PersistentVolumeClaimSpec": {
        1: rep("accessModes"),
        2: f("resources", "VolumeResourceRequirements"),
        3: f("volumeName"),
        4: f("selector", "LabelSelector", ptr=True),
        5: f("storageClassName", ptr=True),
        6: f("volumeMode", ptr=True),
        7: f("dataSource", "TypedLocalObjectReference", ptr=True),
        8: f("dataSourceRef", "TypedObjectReference", ptr=True),
        9: f("volumeAttributesClassName", ptr=True),
    },
    "VolumeResourceRequirements": {
        1: mapping("limits", QUANTITY),
        2: mapping("requests", QUANTITY),
    },
    "PersistentVolumeClaimTemplate": {
        1: f("metadata", "ObjectMeta"),
        2: f("spec", "PersistentVolumeClaimSpec"),
    },
}
