"""The field tables of the built-in kinds extract decodes, one module per API group, and which
message each (apiVersion, kind) stores."""

from __future__ import annotations

from k3s_backup.formats.k8s_api.apps_v1 import APPS
from k3s_backup.formats.k8s_api.batch_v1 import BATCH
from k3s_backup.formats.k8s_api.core_v1 import CORE
from k3s_backup.formats.k8s_api.fields import Table
from k3s_backup.formats.k8s_api.meta import META
from k3s_backup.formats.k8s_api.networking_v1 import NETWORKING
from k3s_backup.formats.k8s_api.pod import POD
from k3s_backup.formats.k8s_api.rbac_v1 import RBAC

MESSAGES: dict[str, Table] = {**META, **CORE, **POD, **RBAC, **APPS, **BATCH, **NETWORKING}

# (apiVersion, kind) -> the message of its `raw`.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "Secret"): "Secret",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("v1", "PersistentVolumeClaim"): "PersistentVolumeClaim",
    ("v1", "Pod"): "Pod",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "RoleBinding",
    ("apps/v1", "Deployment"): "Deployment",
    ("apps/v1", "StatefulSet"): "StatefulSet",
    ("apps/v1", "DaemonSet"): "DaemonSet",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
}
