"""Built-in Kubernetes objects decoded from their protobuf, as `kubectl get -o yaml` shows them.

The API server stores built-in types as `k8s\\x00` + a `runtime.Unknown` whose `raw` is the
object's own protobuf (shared/notes/etcd-format.md). The tables below give, per message, each
field number's JSON name and type, read from k8s.io/api's and apimachinery's `generated.proto`.
Every field a message may carry is either decoded, dropped on purpose (`status`: extract removes
it anyway) or named as not decoded: a field outside the table makes the whole object undecodable
(never a half-decoded object). Zero values of plain fields are left out, as Go's `omitempty`
does; pointer fields (`*bool`, `*int32`) are kept whenever they were written.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from k3s_backup.formats.etcd_db import signed64
from k3s_backup.formats.protowire import LENGTH, VARINT, ProtoError, fields, read_varint

PROTOBUF_MAGIC = b"k8s\x00"

# Scalar field types; any other type name is a message of the table.
STRING, BYTES, INT, BOOL = "string", "bytes", "int", "bool"
TIME, QUANTITY, INT_OR_STRING, FIELDS_V1 = "Time", "Quantity", "IntOrString", "FieldsV1"
DROPPED = "dropped"  # known, removed by design (status)
NOT_DECODED = "not-decoded"  # known, but this decoder does not read it: the object is refused
_SCALARS = {STRING, BYTES, INT, BOOL, TIME, QUANTITY, INT_OR_STRING, FIELDS_V1}
GO_ZERO_TIME = -62135596800  # time.Time{}: January 1 of year 1


class UndecodableError(ValueError):
    """The value is not an object this decoder reads completely."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    repeated: bool = False
    map_value: str | None = None  # a map<string, map_value>
    pointer: bool = False  # Go pointer: kept when written, even if zero
    inline: bool = False  # an embedded struct: its fields appear in the parent's JSON


def f(name: str, kind: str = STRING, *, ptr: bool = False, inline: bool = False) -> Field:
    return Field(name, kind, pointer=ptr, inline=inline)


def rep(name: str, kind: str = STRING) -> Field:
    return Field(name, kind, repeated=True)


def mapping(name: str, value: str = STRING) -> Field:
    return Field(name, value, map_value=value)


def skip(name: str) -> Field:
    return Field(name, NOT_DECODED)


def status() -> Field:
    return Field("status", DROPPED)


Table = dict[int, Field]

_META: dict[str, Table] = {
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

_CORE: dict[str, Table] = {
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

_POD: dict[str, Table] = {
    "PodTemplateSpec": {1: f("metadata", "ObjectMeta"), 2: f("spec", "PodSpec")},
    "Pod": {1: f("metadata", "ObjectMeta"), 2: f("spec", "PodSpec"), 3: status()},
    "PodSpec": {
        1: rep("volumes", "Volume"),
        2: rep("containers", "Container"),
        3: f("restartPolicy"),
        4: f("terminationGracePeriodSeconds", INT, ptr=True),
        5: f("activeDeadlineSeconds", INT, ptr=True),
        6: f("dnsPolicy"),
        7: mapping("nodeSelector"),
        8: f("serviceAccountName"),
        9: f("serviceAccount"),
        10: f("nodeName"),
        11: f("hostNetwork", BOOL),
        12: f("hostPID", BOOL),
        13: f("hostIPC", BOOL),
        14: f("securityContext", "PodSecurityContext", ptr=True),
        15: rep("imagePullSecrets", "LocalObjectReference"),
        16: f("hostname"),
        17: f("subdomain"),
        18: skip("affinity"),
        19: f("schedulerName"),
        20: rep("initContainers", "Container"),
        21: f("automountServiceAccountToken", BOOL, ptr=True),
        22: rep("tolerations", "Toleration"),
        23: rep("hostAliases", "HostAlias"),
        24: f("priorityClassName"),
        25: f("priority", INT, ptr=True),
        26: f("dnsConfig", "PodDNSConfig", ptr=True),
        27: f("shareProcessNamespace", BOOL, ptr=True),
        28: rep("readinessGates", "PodReadinessGate"),
        29: f("runtimeClassName", ptr=True),
        30: f("enableServiceLinks", BOOL, ptr=True),
        31: f("preemptionPolicy", ptr=True),
        32: mapping("overhead", QUANTITY),
        33: rep("topologySpreadConstraints", "TopologySpreadConstraint"),
        34: skip("ephemeralContainers"),
        35: f("setHostnameAsFQDN", BOOL, ptr=True),
        36: skip("os"),
        37: f("hostUsers", BOOL, ptr=True),
        38: skip("schedulingGates"),
        39: skip("resourceClaims"),
        40: skip("resources"),
    },
    "Container": {
        1: f("name"),
        2: f("image"),
        3: rep("command"),
        4: rep("args"),
        5: f("workingDir"),
        6: rep("ports", "ContainerPort"),
        7: rep("env", "EnvVar"),
        8: f("resources", "ResourceRequirements"),
        9: rep("volumeMounts", "VolumeMount"),
        10: f("livenessProbe", "Probe", ptr=True),
        11: f("readinessProbe", "Probe", ptr=True),
        12: f("lifecycle", "Lifecycle", ptr=True),
        13: f("terminationMessagePath"),
        14: f("imagePullPolicy"),
        15: f("securityContext", "SecurityContext", ptr=True),
        16: f("stdin", BOOL),
        17: f("stdinOnce", BOOL),
        18: f("tty", BOOL),
        19: rep("envFrom", "EnvFromSource"),
        20: f("terminationMessagePolicy"),
        21: skip("volumeDevices"),
        22: f("startupProbe", "Probe", ptr=True),
        23: skip("resizePolicy"),
        24: f("restartPolicy", ptr=True),
    },
    "ContainerPort": {
        1: f("name"),
        2: f("hostPort", INT),
        3: f("containerPort", INT),
        4: f("protocol"),
        5: f("hostIP"),
    },
    "EnvVar": {1: f("name"), 2: f("value"), 3: f("valueFrom", "EnvVarSource", ptr=True)},
    "EnvVarSource": {
        1: f("fieldRef", "ObjectFieldSelector", ptr=True),
        2: f("resourceFieldRef", "ResourceFieldSelector", ptr=True),
        3: f("configMapKeyRef", "KeySelector", ptr=True),
        4: f("secretKeyRef", "KeySelector", ptr=True),
    },
    "ObjectFieldSelector": {1: f("apiVersion"), 2: f("fieldPath")},
    "ResourceFieldSelector": {1: f("containerName"), 2: f("resource"), 3: f("divisor", QUANTITY)},
    # ConfigMapKeySelector and SecretKeySelector share one layout.
    "KeySelector": {
        1: f("", "LocalObjectReference", inline=True),
        2: f("key"),
        3: f("optional", BOOL, ptr=True),
    },
    "EnvFromSource": {
        1: f("prefix"),
        2: f("configMapRef", "EnvSource", ptr=True),
        3: f("secretRef", "EnvSource", ptr=True),
    },
    # ConfigMapEnvSource and SecretEnvSource share one layout.
    "EnvSource": {1: f("", "LocalObjectReference", inline=True), 2: f("optional", BOOL, ptr=True)},
    "ResourceRequirements": {
        1: mapping("limits", QUANTITY),
        2: mapping("requests", QUANTITY),
        3: skip("claims"),
    },
    "VolumeMount": {
        1: f("name"),
        2: f("readOnly", BOOL),
        3: f("mountPath"),
        4: f("subPath"),
        5: f("mountPropagation", ptr=True),
        6: f("subPathExpr"),
        7: f("recursiveReadOnly", ptr=True),
    },
    "Probe": {
        1: f("", "ProbeHandler", inline=True),
        2: f("initialDelaySeconds", INT),
        3: f("timeoutSeconds", INT),
        4: f("periodSeconds", INT),
        5: f("successThreshold", INT),
        6: f("failureThreshold", INT),
        7: f("terminationGracePeriodSeconds", INT, ptr=True),
    },
    "ProbeHandler": {
        1: f("exec", "ExecAction", ptr=True),
        2: f("httpGet", "HTTPGetAction", ptr=True),
        3: f("tcpSocket", "TCPSocketAction", ptr=True),
        4: f("grpc", "GRPCAction", ptr=True),
    },
    "ExecAction": {1: rep("command")},
    "HTTPGetAction": {
        1: f("path"),
        2: f("port", INT_OR_STRING),
        3: f("host"),
        4: f("scheme"),
        5: rep("httpHeaders", "HTTPHeader"),
    },
    "HTTPHeader": {1: f("name"), 2: f("value")},
    "TCPSocketAction": {1: f("port", INT_OR_STRING), 2: f("host")},
    "GRPCAction": {1: f("port", INT), 2: f("service", ptr=True)},
    "SecurityContext": {
        1: f("capabilities", "Capabilities", ptr=True),
        2: f("privileged", BOOL, ptr=True),
        3: skip("seLinuxOptions"),
        4: f("runAsUser", INT, ptr=True),
        5: f("runAsNonRoot", BOOL, ptr=True),
        6: f("readOnlyRootFilesystem", BOOL, ptr=True),
        7: f("allowPrivilegeEscalation", BOOL, ptr=True),
        8: f("runAsGroup", INT, ptr=True),
        9: f("procMount", ptr=True),
        10: skip("windowsOptions"),
        11: f("seccompProfile", "SeccompProfile", ptr=True),
        12: skip("appArmorProfile"),
    },
    "Capabilities": {1: rep("add"), 2: rep("drop")},
    "SeccompProfile": {1: f("type"), 2: f("localhostProfile", ptr=True)},
    "PodSecurityContext": {
        1: skip("seLinuxOptions"),
        2: f("runAsUser", INT, ptr=True),
        3: f("runAsNonRoot", BOOL, ptr=True),
        4: rep("supplementalGroups", INT),
        5: f("fsGroup", INT, ptr=True),
        6: f("runAsGroup", INT, ptr=True),
        7: skip("sysctls"),
        8: skip("windowsOptions"),
        9: f("fsGroupChangePolicy", ptr=True),
        10: f("seccompProfile", "SeccompProfile", ptr=True),
        11: skip("appArmorProfile"),
        12: f("supplementalGroupsPolicy", ptr=True),
        13: f("seLinuxChangePolicy", ptr=True),
    },
    "Toleration": {
        1: f("key"),
        2: f("operator"),
        3: f("value"),
        4: f("effect"),
        5: f("tolerationSeconds", INT, ptr=True),
    },
    "Volume": {1: f("name"), 2: f("", "VolumeSource", inline=True)},
    "VolumeSource": {
        1: f("hostPath", "HostPathVolumeSource", ptr=True),
        2: f("emptyDir", "EmptyDirVolumeSource", ptr=True),
        6: f("secret", "SecretVolumeSource", ptr=True),
        10: f("persistentVolumeClaim", "PersistentVolumeClaimVolumeSource", ptr=True),
        16: f("downwardAPI", "DownwardAPIVolumeSource", ptr=True),
        19: f("configMap", "ConfigMapVolumeSource", ptr=True),
        26: f("projected", "ProjectedVolumeSource", ptr=True),
        28: skip("csi"),
        29: skip("ephemeral"),
        # The in-tree cloud and network volume plugins are named, not decoded.
        **{
            number: skip(name)
            for number, name in (
                (3, "gcePersistentDisk"),
                (4, "awsElasticBlockStore"),
                (5, "gitRepo"),
                (7, "nfs"),
                (8, "iscsi"),
                (9, "glusterfs"),
                (11, "rbd"),
                (12, "flexVolume"),
                (13, "cinder"),
                (14, "cephfs"),
                (15, "flocker"),
                (17, "fc"),
                (18, "azureFile"),
                (20, "vsphereVolume"),
                (21, "quobyte"),
                (22, "azureDisk"),
                (23, "photonPersistentDisk"),
                (24, "portworxVolume"),
                (25, "scaleIO"),
                (27, "storageos"),
                (30, "image"),
            )
        },
    },
    "HostAlias": {1: f("ip"), 2: rep("hostnames")},
    "PodDNSConfig": {
        1: rep("nameservers"),
        2: rep("searches"),
        3: rep("options", "PodDNSConfigOption"),
    },
    "PodDNSConfigOption": {1: f("name"), 2: f("value", ptr=True)},
    "PodReadinessGate": {1: f("conditionType")},
    "TopologySpreadConstraint": {
        1: f("maxSkew", INT),
        2: f("topologyKey"),
        3: f("whenUnsatisfiable"),
        4: f("labelSelector", "LabelSelector", ptr=True),
        5: f("minDomains", INT, ptr=True),
        6: f("nodeAffinityPolicy", ptr=True),
        7: f("nodeTaintsPolicy", ptr=True),
        8: rep("matchLabelKeys"),
    },
    "Lifecycle": {
        1: f("postStart", "LifecycleHandler", ptr=True),
        2: f("preStop", "LifecycleHandler", ptr=True),
        3: skip("stopSignal"),
    },
    "LifecycleHandler": {
        1: f("exec", "ExecAction", ptr=True),
        2: f("httpGet", "HTTPGetAction", ptr=True),
        3: f("tcpSocket", "TCPSocketAction", ptr=True),
        4: skip("sleep"),
    },
    "DownwardAPIVolumeSource": {
        1: rep("items", "DownwardAPIVolumeFile"),
        2: f("defaultMode", INT, ptr=True),
    },
    "DownwardAPIVolumeFile": {
        1: f("path"),
        2: f("fieldRef", "ObjectFieldSelector", ptr=True),
        3: f("resourceFieldRef", "ResourceFieldSelector", ptr=True),
        4: f("mode", INT, ptr=True),
    },
    "ProjectedVolumeSource": {
        1: rep("sources", "VolumeProjection"),
        2: f("defaultMode", INT, ptr=True),
    },
    "VolumeProjection": {
        1: f("secret", "KeyProjection", ptr=True),
        2: f("downwardAPI", "DownwardAPIProjection", ptr=True),
        3: f("configMap", "KeyProjection", ptr=True),
        4: f("serviceAccountToken", "ServiceAccountTokenProjection", ptr=True),
        5: skip("clusterTrustBundle"),
        6: skip("podCertificate"),
    },
    # SecretProjection and ConfigMapProjection share one layout.
    "KeyProjection": {
        1: f("", "LocalObjectReference", inline=True),
        2: rep("items", "KeyToPath"),
        4: f("optional", BOOL, ptr=True),
    },
    "DownwardAPIProjection": {1: rep("items", "DownwardAPIVolumeFile")},
    "ServiceAccountTokenProjection": {
        1: f("audience"),
        2: f("expirationSeconds", INT, ptr=True),
        3: f("path"),
    },
    "HostPathVolumeSource": {1: f("path"), 2: f("type", ptr=True)},
    "EmptyDirVolumeSource": {1: f("medium"), 2: f("sizeLimit", QUANTITY, ptr=True)},
    "SecretVolumeSource": {
        1: f("secretName"),
        2: rep("items", "KeyToPath"),
        3: f("defaultMode", INT, ptr=True),
        4: f("optional", BOOL, ptr=True),
    },
    "ConfigMapVolumeSource": {
        1: f("", "LocalObjectReference", inline=True),
        2: rep("items", "KeyToPath"),
        3: f("defaultMode", INT, ptr=True),
        4: f("optional", BOOL, ptr=True),
    },
    "KeyToPath": {1: f("key"), 2: f("path"), 3: f("mode", INT, ptr=True)},
    "PersistentVolumeClaimVolumeSource": {1: f("claimName"), 2: f("readOnly", BOOL)},
}

_RBAC: dict[str, Table] = {
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

_APPS: dict[str, Table] = {
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

_BATCH: dict[str, Table] = {
    "Job": {1: f("metadata", "ObjectMeta"), 2: f("spec", "JobSpec"), 3: status()},
    "JobSpec": {
        1: f("parallelism", INT, ptr=True),
        2: f("completions", INT, ptr=True),
        3: f("activeDeadlineSeconds", INT, ptr=True),
        4: f("selector", "LabelSelector", ptr=True),
        5: f("manualSelector", BOOL, ptr=True),
        6: f("template", "PodTemplateSpec"),
        7: f("backoffLimit", INT, ptr=True),
        8: f("ttlSecondsAfterFinished", INT, ptr=True),
        9: f("completionMode", ptr=True),
        10: f("suspend", BOOL, ptr=True),
        11: skip("podFailurePolicy"),
        12: f("backoffLimitPerIndex", INT, ptr=True),
        13: f("maxFailedIndexes", INT, ptr=True),
        14: f("podReplacementPolicy", ptr=True),
        15: f("managedBy", ptr=True),
        16: skip("successPolicy"),
    },
    "CronJob": {1: f("metadata", "ObjectMeta"), 2: f("spec", "CronJobSpec"), 3: status()},
    "CronJobSpec": {
        1: f("schedule"),
        2: f("startingDeadlineSeconds", INT, ptr=True),
        3: f("concurrencyPolicy"),
        4: f("suspend", BOOL, ptr=True),
        5: f("jobTemplate", "JobTemplateSpec"),
        6: f("successfulJobsHistoryLimit", INT, ptr=True),
        7: f("failedJobsHistoryLimit", INT, ptr=True),
        8: f("timeZone", ptr=True),
    },
    "JobTemplateSpec": {1: f("metadata", "ObjectMeta"), 2: f("spec", "JobSpec")},
}

_NETWORKING: dict[str, Table] = {
    "Ingress": {1: f("metadata", "ObjectMeta"), 2: f("spec", "IngressSpec"), 3: status()},
    "IngressSpec": {
        1: f("defaultBackend", "IngressBackend", ptr=True),
        2: rep("tls", "IngressTLS"),
        3: rep("rules", "IngressRule"),
        4: f("ingressClassName", ptr=True),
    },
    "IngressBackend": {
        3: f("resource", "TypedLocalObjectReference", ptr=True),
        4: f("service", "IngressServiceBackend", ptr=True),
    },
    "IngressServiceBackend": {1: f("name"), 2: f("port", "ServiceBackendPort")},
    "ServiceBackendPort": {1: f("name"), 2: f("number", INT)},
    "IngressTLS": {1: rep("hosts"), 2: f("secretName")},
    "IngressRule": {1: f("host"), 2: f("", "IngressRuleValue", inline=True)},
    "IngressRuleValue": {1: f("http", "HTTPIngressRuleValue", ptr=True)},
    "HTTPIngressRuleValue": {1: rep("paths", "HTTPIngressPath")},
    "HTTPIngressPath": {
        1: f("path"),
        2: f("backend", "IngressBackend"),
        3: f("pathType", ptr=True),
    },
}

MESSAGES: dict[str, Table] = {**_META, **_CORE, **_POD, **_RBAC, **_APPS, **_BATCH, **_NETWORKING}

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


def decodable_kinds() -> list[str]:
    return sorted(f"{kind} ({api})" for api, kind in KINDS)


def _time(data: bytes, path: str) -> str:
    """metav1.Time (seconds 1, nanos 2) as JSON shows it: RFC 3339, whole seconds, UTC; ""
    for the zero time (Go writes it as an empty message; JSON shows null)."""
    seconds = GO_ZERO_TIME
    for number, wire, value in fields(data):
        if number == 1 and wire == VARINT and isinstance(value, int):
            seconds = signed64(value)
        elif number != 2:
            raise UndecodableError(f"{path}: field {number} of a Time")
    if seconds == GO_ZERO_TIME:
        return ""
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise UndecodableError(f"{path}: a time out of range ({seconds})") from None
    return moment.isoformat().replace("+00:00", "Z")


def _int_or_string(data: bytes, path: str) -> int | str:
    """intstr.IntOrString (type 1: 0 int, 1 string; intVal 2; strVal 3)."""
    parts = {number: value for number, _wire, value in fields(data)}
    if not set(parts) <= {1, 2, 3}:
        raise UndecodableError(f"{path}: unknown field of an IntOrString")
    if parts.get(1, 0) == 1:
        return _text(parts.get(3, b""), path)
    value = parts.get(2, 0)
    if not isinstance(value, int):
        raise UndecodableError(f"{path}: an IntOrString's intVal is not a number")
    return signed64(value)


def _text(value: int | bytes, path: str) -> str:
    if not isinstance(value, bytes):
        raise UndecodableError(f"{path}: a number where text belongs")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise UndecodableError(f"{path}: text that is not UTF-8") from None


def _scalar(kind: str, wire: int, value: int | bytes, path: str) -> Any:
    if kind in (INT, BOOL):
        if wire != VARINT or not isinstance(value, int):
            raise UndecodableError(f"{path}: wire type {wire} where a number belongs")
        return signed64(value) if kind == INT else value != 0
    if wire != LENGTH or not isinstance(value, bytes):
        raise UndecodableError(f"{path}: wire type {wire} where bytes belong")
    if kind == STRING:
        return _text(value, path)
    if kind == BYTES:
        return base64.b64encode(value).decode()
    if kind == TIME:
        return _time(value, path)
    if kind == QUANTITY:  # resource.Quantity: string 1
        return next((_text(v, path) for n, _w, v in fields(value) if n == 1), "")
    if kind == INT_OR_STRING:
        return _int_or_string(value, path)
    raw = next((v for n, _w, v in fields(value) if n == 1), b"")  # FieldsV1: raw 1, JSON
    try:
        return json.loads(raw) if isinstance(raw, bytes) and raw else {}
    except (ValueError, UnicodeDecodeError):
        raise UndecodableError(f"{path}: not valid JSON") from None


def _packed(kind: str, value: int | bytes, path: str) -> list[Any]:
    """A repeated number written packed (one length-delimited run of varints)."""
    if kind not in (INT, BOOL) or not isinstance(value, bytes):
        return []
    out: list[Any] = []
    pos = 0
    while pos < len(value):
        number, pos = read_varint(value, pos)
        out.append(_scalar(kind, VARINT, number, path))
    return out


def _is_zero(value: Any) -> bool:
    return isinstance(value, str | int) and not value


def _map_entry(spec: Field, value: int | bytes, path: str) -> tuple[str, Any]:
    if not isinstance(value, bytes):
        raise UndecodableError(f"{path}: a map entry that is not a message")
    key: str = ""
    item: Any = ""  # an entry without a value: the empty string (or bytes, base64 "")
    for number, wire, part in fields(value):
        if number == 1:
            key = _text(part, path)
        elif number == 2:
            item = _scalar(spec.type, wire, part, f"{path}[{key}]")
        else:
            raise UndecodableError(f"{path}: field {number} of a map entry")
    return key, item


def _value(spec: Field, wire: int, value: int | bytes, path: str) -> Any:
    if spec.type in _SCALARS:
        return _scalar(spec.type, wire, value, path)
    if wire != LENGTH or not isinstance(value, bytes):
        raise UndecodableError(f"{path}: wire type {wire} where a message belongs")
    return decode_message(value, spec.type, path)


def decode_message(data: bytes, message: str, path: str) -> dict[str, Any]:
    """One message of the table as a JSON object (keys sorted, as kubectl prints them)."""
    table = MESSAGES[message]
    out: dict[str, Any] = {}
    for number, wire, value in fields(data):
        spec = table.get(number)
        if spec is None:
            raise UndecodableError(f"{path}: field {number} of {message} is unknown here")
        where = f"{path}.{spec.name}" if spec.name else path
        if spec.type == NOT_DECODED:
            raise UndecodableError(f"{where} is not decoded")
        if spec.type == DROPPED:
            continue
        if spec.map_value is not None:
            key, item = _map_entry(spec, value, where)
            out.setdefault(spec.name, {})[key] = item
        elif spec.repeated:
            items = out.setdefault(spec.name, [])
            if wire == LENGTH and spec.type in (INT, BOOL):
                items.extend(_packed(spec.type, value, where))
            else:
                items.append(_value(spec, wire, value, f"{where}[{len(items)}]"))
        elif spec.inline:
            out.update(_value(spec, wire, value, where))
        else:
            item = _value(spec, wire, value, where)
            if spec.pointer or not _is_zero(item):
                out[spec.name] = item
            else:
                out.pop(spec.name, None)
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Envelope:
    api_version: str
    kind: str
    raw: bytes


def envelope(value: bytes) -> Envelope:
    """The runtime.Unknown after `k8s\\x00`: typeMeta (1: apiVersion 1, kind 2), raw (2),
    contentEncoding (3), contentType (4)."""
    if not value.startswith(PROTOBUF_MAGIC):
        raise UndecodableError("not a protobuf value (no k8s\\x00 prefix)")
    api_version = kind = ""
    raw = b""
    try:
        for number, wire, part in fields(value[len(PROTOBUF_MAGIC) :]):
            if wire != LENGTH or not isinstance(part, bytes):
                raise UndecodableError(f"field {number} of the envelope is not length-delimited")
            if number == 1:
                type_meta = {n: _text(v, "typeMeta") for n, _w, v in fields(part)}
                api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
            elif number == 2:
                raw = part
            elif number == 3 and part:
                raise UndecodableError(f"content encoding {part!r} is not supported")
    except ProtoError as exc:
        raise UndecodableError(f"damaged protobuf: {exc}") from None
    return Envelope(api_version, kind, raw)


def decode_object(value: bytes) -> dict[str, Any]:
    """A stored protobuf value as the object `kubectl get -o yaml` prints (status dropped).
    UndecodableError names the kind or field this decoder does not read."""
    found = envelope(value)
    message = KINDS.get((found.api_version, found.kind))
    if message is None:
        raise UndecodableError(
            f"kind {found.kind or '?'} ({found.api_version or '?'}) is not one this decoder"
            f" reads; it reads {', '.join(decodable_kinds())}"
        )
    try:
        body = decode_message(found.raw, message, found.kind)
    except ProtoError as exc:
        raise UndecodableError(f"{found.kind}: damaged protobuf: {exc}") from None
    return dict(sorted({"apiVersion": found.api_version, "kind": found.kind, **body}.items()))
