"""apps/v1 (k8s.io/api/apps/v1/generated.proto)."""

from __future__ import annotations

from k3s_backup.formats.k8s_api.fields import (
    BOOL,
    INT,
    INT_OR_STRING,
    Table,
    f,
    rep,
    status,
)

APPS: dict[str, Table] = {
    "Deployment": {1: f("metadata", "ObjectMeta"), 2: f("spec", "DeploymentSpec"), 3: status()},
    "DeploymentSpec": {
        1: f("replicas", INT, ptr=True),
        2: f("selector", "LabelSelector", ptr=True),
        3: f("template", "PodTemplateSpec"),
        4: f("strategy", "DeploymentStrategy"),
        5: f("minReadySeconds", INT),
        6: f("revisionHistoryLimit", INT, ptr=True),
        7: f("paused", BOOL),
        9: f("progressDeadlineSeconds", INT, ptr=True),
    },
    "DeploymentStrategy": {1: f("type"), 2: f("rollingUpdate", "RollingUpdate", ptr=True)},
    # RollingUpdateDeployment and RollingUpdateDaemonSet share one layout.
    "RollingUpdate": {
        1: f("maxUnavailable", INT_OR_STRING, ptr=True),
        2: f("maxSurge", INT_OR_STRING, ptr=True),
    },
    "StatefulSet": {1: f("metadata", "ObjectMeta"), 2: f("spec", "StatefulSetSpec"), 3: status()},
    "StatefulSetSpec": {
        1: f("replicas", INT, ptr=True),
        2: f("selector", "LabelSelector", ptr=True),
        3: f("template", "PodTemplateSpec"),
        4: rep("volumeClaimTemplates", "PersistentVolumeClaim"),
        5: f("serviceName"),
        6: f("podManagementPolicy"),
        7: f("updateStrategy", "StatefulSetUpdateStrategy"),
        8: f("revisionHistoryLimit", INT, ptr=True),
        9: f("minReadySeconds", INT),
        10: f("persistentVolumeClaimRetentionPolicy", "PVCRetentionPolicy", ptr=True),
        11: f("ordinals", "StatefulSetOrdinals", ptr=True),
    },
    "StatefulSetUpdateStrategy": {
        1: f("type"),
        2: f("rollingUpdate", "RollingUpdateStatefulSetStrategy", ptr=True),
    },
    "RollingUpdateStatefulSetStrategy": {
        1: f("partition", INT, ptr=True),
        2: f("maxUnavailable", INT_OR_STRING, ptr=True),
    },
    "PVCRetentionPolicy": {1: f("whenDeleted"), 2: f("whenScaled")},
    "StatefulSetOrdinals": {1: f("start", INT)},
    "DaemonSet": {1: f("metadata", "ObjectMeta"), 2: f("spec", "DaemonSetSpec"), 3: status()},
    "DaemonSetSpec": {
        1: f("selector", "LabelSelector", ptr=True),
        2: f("template", "PodTemplateSpec"),
        3: f("updateStrategy", "DaemonSetUpdateStrategy"),
        4: f("minReadySeconds", INT),
        6: f("revisionHistoryLimit", INT, ptr=True),
    },
    "DaemonSetUpdateStrategy": {1: f("type"), 2: f("rollingUpdate", "RollingUpdate", ptr=True)},
}
