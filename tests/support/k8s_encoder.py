"""Built-in Kubernetes objects encoded as the API server stores them, from the field numbers of
k8s.io/api's and apimachinery's generated.proto, written out here by hand (not the product's
decoder run backwards). Each builder returns the stored value and the object `kubectl get -o
yaml` shows for it, server fields included: what extract must give back, minus those."""

from __future__ import annotations

import base64
from typing import Any

from k3s_backup.formats.protowire import encode_bytes, encode_varint

CREATED = 1_790_000_000
CREATED_TEXT = "2026-09-21T14:13:20Z"


def s(number: int, text: str) -> bytes:
    return encode_bytes(number, text.encode())


def b(number: int, data: bytes) -> bytes:
    return encode_bytes(number, data)


def v(number: int, value: int) -> bytes:
    """A varint field; negative numbers as Go writes int32/int64: 64-bit two's complement."""
    return encode_varint(number << 3) + encode_varint(value & (1 << 64) - 1)


def m(number: int, *parts: bytes) -> bytes:
    return encode_bytes(number, b"".join(parts))


def entry(number: int, key: str, value: bytes) -> bytes:
    return m(number, s(1, key), b(2, value))


def string_map(number: int, items: dict[str, str]) -> bytes:
    return b"".join(entry(number, k, val.encode()) for k, val in items.items())


def quantity(text: str) -> bytes:
    return s(1, text)


def wrap(api_version: str, kind: str, raw: bytes) -> bytes:
    """`k8s\\x00` + runtime.Unknown{typeMeta 1 {apiVersion 1, kind 2}, raw 2, contentType 4}."""
    type_meta = s(1, api_version) + s(2, kind)
    return (
        b"k8s\x00"
        + m(1, type_meta)
        + b(2, raw)
        + s(3, "")
        + s(4, "application/vnd.kubernetes.protobuf")
    )


def object_meta(
    name: str,
    namespace: str = "",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: tuple[str, str] | None = None,
    owner_is_controller: bool = False,
    before_1_25: bool = False,
) -> tuple[bytes, dict[str, Any]]:
    """ObjectMeta as Go's marshaller writes it: every plain field, empty or not, and the
    server-set ones (uid 5, resourceVersion 6 empty in storage, generation 7, creation 8,
    managedFields 17). `before_1_25`: as an API server up to 1.24 wrote it, with the plain
    string clusterName (15, empty) that 1.25 removed."""
    uid = f"uid-{namespace}-{name}"
    data = (
        s(1, name)
        + s(2, "")
        + s(3, namespace)
        + s(4, "")
        + s(5, uid)
        + s(6, "")
        + v(7, 1)
        + m(8, v(1, CREATED), v(2, 0))
        + string_map(11, labels or {})
        + string_map(12, annotations or {})
    )
    shown: dict[str, Any] = {"name": name, "uid": uid, "generation": 1}
    shown["creationTimestamp"] = CREATED_TEXT
    if namespace:
        shown["namespace"] = namespace
    if labels:
        shown["labels"] = dict(labels)
    if annotations:
        shown["annotations"] = dict(annotations)
    if owner:
        kind, owner_name = owner
        data += m(
            13,
            s(1, kind),
            s(3, owner_name),
            s(4, f"uid-{owner_name}"),
            s(5, "apps/v1"),
            v(6, int(owner_is_controller)),
        )
        shown["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "controller": owner_is_controller,
                "kind": kind,
                "name": owner_name,
                "uid": f"uid-{owner_name}",
            }
        ]
    if before_1_25:
        data += s(15, "")
    managed = m(
        17,
        s(1, "kubectl-client-side-apply"),
        s(2, "Update"),
        s(3, "v1"),
        m(4, v(1, CREATED)),
        s(6, "FieldsV1"),
        m(7, b(1, b'{"f:metadata":{}}')),
        s(8, ""),
    )
    shown["managedFields"] = [
        {
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {}},
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "time": CREATED_TEXT,
        }
    ]
    return data + managed, shown


def namespace(name: str, **labels: str) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, labels=labels)
    raw = m(1, meta) + m(2, s(1, "kubernetes")) + m(3, s(1, "Active"))
    return wrap("v1", "Namespace", raw), {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": shown,
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def secret(
    name: str, ns: str, data: dict[str, bytes], kind: str = "Opaque"
) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns, annotations={"note": "keep"})
    raw = m(1, meta) + b"".join(entry(2, k, val) for k, val in data.items()) + s(3, kind)
    return wrap("v1", "Secret", raw), {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": shown,
        "type": kind,
        "data": {k: base64.b64encode(val).decode() for k, val in data.items()},
    }


def config_map(
    name: str, ns: str, data: dict[str, str], binary: dict[str, bytes] | None = None
) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns, labels={"app": "web"})
    binary = binary or {}
    raw = (
        m(1, meta)
        + string_map(2, data)
        + b"".join(entry(3, k, val) for k, val in binary.items())
        + v(4, 1)  # immutable: a *bool, set
    )
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": shown,
        "data": dict(data),
        "immutable": True,
    }
    if binary:
        body["binaryData"] = {k: base64.b64encode(val).decode() for k, val in binary.items()}
    return wrap("v1", "ConfigMap", raw), body


def service_account(name: str, ns: str) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    raw = m(1, meta) + m(3, s(1, "registry-creds")) + v(4, 0)
    return wrap("v1", "ServiceAccount", raw), {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": shown,
        "imagePullSecrets": [{"name": "registry-creds"}],
        "automountServiceAccountToken": False,
    }


RBAC = "rbac.authorization.k8s.io/v1"


def _rule() -> tuple[bytes, dict[str, Any]]:
    data = s(1, "get") + s(1, "list") + s(2, "") + s(3, "secrets") + s(4, "db")
    return data, {
        "verbs": ["get", "list"],
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["db"],
    }


def role(name: str, ns: str = "") -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    rule, rule_shown = _rule()
    kind = "Role" if ns else "ClusterRole"
    raw = m(1, meta) + m(2, rule) + m(2, s(1, "watch"), s(5, "/healthz"))
    rules = [rule_shown, {"verbs": ["watch"], "nonResourceURLs": ["/healthz"]}]
    return wrap(RBAC, kind, raw), {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": shown,
        "rules": rules,
    }


def role_binding(name: str, ns: str = "") -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    kind = "RoleBinding" if ns else "ClusterRoleBinding"
    subject = m(2, s(1, "ServiceAccount"), s(2, ""), s(3, "deployer"), s(4, ns or "default"))
    ref_kind = "Role" if ns else "ClusterRole"
    raw = m(1, meta) + subject + m(3, s(1, "rbac.authorization.k8s.io"), s(2, ref_kind), s(3, name))
    return wrap(RBAC, kind, raw), {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": shown,
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns or "default"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": name},
    }


def service(name: str, ns: str) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    port = m(1, s(1, "http"), s(2, "TCP"), v(3, 80), m(4, v(1, 1), v(2, 0), s(3, "web")), v(5, 0))
    spec = (
        port
        + string_map(2, {"app": name})
        + s(3, "10.43.0.17")
        + s(4, "ClusterIP")
        + s(7, "None")
        + s(18, "10.43.0.17")
        + s(19, "IPv4")
        + s(17, "SingleStack")
        + s(22, "Cluster")
    )
    raw = m(1, meta) + m(2, spec) + m(3, m(1, b""))
    return wrap("v1", "Service", raw), {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": shown,
        "spec": {
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web"}],
            "selector": {"app": name},
            "clusterIP": "10.43.0.17",
            "clusterIPs": ["10.43.0.17"],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    }


def pvc(name: str, ns: str) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    spec = (
        s(1, "ReadWriteOnce")
        + m(2, entry(2, "storage", quantity("5Gi")))
        + s(3, "")
        + s(5, "local-path")
        + s(6, "Filesystem")
    )
    raw = m(1, meta) + m(2, spec) + m(3, s(1, "Pending"))
    return wrap("v1", "PersistentVolumeClaim", raw), {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": shown,
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}},
            "storageClassName": "local-path",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Pending"},
    }


def pod_template(app: str) -> tuple[bytes, dict[str, Any]]:
    """A PodTemplateSpec as the API server stores it after defaulting."""
    meta = s(1, "") + s(3, "") + m(8, b"") + string_map(11, {"app": app})
    container = (
        s(1, app)
        + s(2, f"registry.example/{app}:1.2")
        + s(3, "/bin/server")
        + s(4, "--port=8080")
        + m(6, s(1, "http"), v(2, 0), v(3, 8080), s(4, "TCP"), s(5, ""))
        + m(7, s(1, "MODE"), s(2, "prod"))
        + m(7, s(1, "TOKEN"), s(2, ""), m(3, m(4, m(1, s(1, "db")), s(2, "password"))))
        + m(8, entry(1, "memory", quantity("128Mi")), entry(2, "cpu", quantity("100m")))
        + m(9, s(1, "config"), v(2, 1), s(3, "/etc/app"), s(4, ""))
        + m(
            11,
            m(1, m(2, s(1, "/healthz"), m(2, v(1, 0), v(2, 8080)), s(4, "HTTP"))),
            v(2, 0),
            v(3, 1),
            v(4, 10),
            v(5, 1),
            v(6, 3),
        )
        + s(13, "/dev/termination-log")
        + s(14, "IfNotPresent")
        + m(15, m(1, s(2, "ALL")), v(5, 1), v(7, 0))
        + v(16, 0)
        + v(17, 0)
        + v(18, 0)
        + s(20, "File")
    )
    spec = (
        m(1, s(1, "config"), m(2, m(19, m(1, s(1, f"{app}-config")), v(3, 420))))
        + m(2, container)
        + s(3, "Always")
        + v(4, 30)
        + s(6, "ClusterFirst")
        + s(8, app)
        + s(9, app)
        + v(11, 0)
        + v(12, 0)
        + v(13, 0)
        + m(14, v(2, 1000))
        + s(19, "default-scheduler")
        + m(22, s(1, "node.kubernetes.io/not-ready"), s(2, "Exists"), s(4, "NoExecute"), v(5, 300))
        + v(30, 1)
    )
    shown = {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "volumes": [
                {"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": 420}}
            ],
            "containers": [
                {
                    "name": app,
                    "image": f"registry.example/{app}:1.2",
                    "command": ["/bin/server"],
                    "args": ["--port=8080"],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "MODE", "value": "prod"},
                        {
                            "name": "TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                        },
                    ],
                    "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m"}},
                    "volumeMounts": [{"name": "config", "readOnly": True, "mountPath": "/etc/app"}],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {
                        "capabilities": {"drop": ["ALL"]},
                        "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False,
                    },
                    "terminationMessagePolicy": "File",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": app,
            "serviceAccount": app,
            "securityContext": {"runAsUser": 1000},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            "enableServiceLinks": True,
        },
    }
    return m(1, meta) + m(2, spec), shown


def selector(app: str) -> tuple[bytes, dict[str, Any]]:
    return string_map(1, {"app": app}), {"matchLabels": {"app": app}}


def deployment(name: str, ns: str) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    template, template_shown = pod_template(name)
    chosen, chosen_shown = selector(name)
    strategy = s(1, "RollingUpdate") + m(2, m(1, v(1, 1), s(3, "25%")), m(2, v(1, 1), s(3, "25%")))
    spec = (
        v(1, 2)
        + m(2, chosen)
        + m(3, template)
        + m(4, strategy)
        + v(5, 0)
        + v(6, 10)
        + v(7, 0)
        + v(9, 600)
    )
    raw = m(1, meta) + m(2, spec) + m(3, v(1, 1), v(2, 2))
    return wrap("apps/v1", "Deployment", raw), {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": shown,
        "spec": {
            "replicas": 2,
            "selector": chosen_shown,
            "template": template_shown,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {"observedGeneration": 1, "replicas": 2},
    }


def stateful_set(name: str, ns: str) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    template, template_shown = pod_template(name)
    chosen, chosen_shown = selector(name)
    claim_meta = s(1, "data") + s(3, "")
    claim = (
        m(1, claim_meta)
        + m(2, s(1, "ReadWriteOnce"), m(2, entry(2, "storage", quantity("1Gi"))))
        + m(3, b"")
    )
    spec = (
        v(1, 1)
        + m(2, chosen)
        + m(3, template)
        + m(4, claim)
        + s(5, name)
        + s(6, "OrderedReady")
        + m(7, s(1, "RollingUpdate"), m(2, v(1, 0)))
        + v(8, 10)
        + m(10, s(1, "Retain"), s(2, "Retain"))
    )
    raw = m(1, meta) + m(2, spec) + m(3, v(2, 1))
    return wrap("apps/v1", "StatefulSet", raw), {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": shown,
        "spec": {
            "replicas": 1,
            "selector": chosen_shown,
            "template": template_shown,
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
            "serviceName": name,
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10,
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain",
                "whenScaled": "Retain",
            },
        },
    }


def daemon_set(name: str, ns: str) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    template, template_shown = pod_template(name)
    chosen, chosen_shown = selector(name)
    update = s(1, "RollingUpdate") + m(2, m(1, v(1, 0), v(2, 1)), m(2, v(1, 0), v(2, 0)))
    spec = m(1, chosen) + m(2, template) + m(3, update) + v(4, 0) + v(6, 10)
    raw = m(1, meta) + m(2, spec) + m(3, v(1, 3))
    return wrap("apps/v1", "DaemonSet", raw), {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": shown,
        "spec": {
            "selector": chosen_shown,
            "template": template_shown,
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "revisionHistoryLimit": 10,
        },
    }


def _job_spec(app: str) -> tuple[bytes, dict[str, Any]]:
    template, template_shown = pod_template(app)
    spec = v(1, 1) + v(2, 1) + m(6, template) + v(7, 6) + s(9, "NonIndexed") + v(10, 0)
    shown = {
        "parallelism": 1,
        "completions": 1,
        "template": template_shown,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "suspend": False,
    }
    return spec, shown


def job(name: str, ns: str) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    spec, spec_shown = _job_spec(name)
    raw = m(1, meta) + m(2, spec) + m(3, v(4, 1))
    return wrap("batch/v1", "Job", raw), {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": shown,
        "spec": spec_shown,
        "status": {"succeeded": 1},
    }


def cron_job(name: str, ns: str) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    spec, spec_shown = _job_spec(name)
    template = m(1, s(1, ""), m(8, b"")) + m(2, spec)
    cron = (
        s(1, "*/5 * * * *")
        + s(3, "Forbid")
        + v(4, 0)
        + m(5, template)
        + v(6, 3)
        + v(7, 1)
        + s(8, "Europe/Berlin")
    )
    raw = m(1, meta) + m(2, cron) + m(3, b"")
    return wrap("batch/v1", "CronJob", raw), {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": shown,
        "spec": {
            "schedule": "*/5 * * * *",
            "concurrencyPolicy": "Forbid",
            "suspend": False,
            "jobTemplate": {"metadata": {}, "spec": spec_shown},
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "timeZone": "Europe/Berlin",
        },
    }


def ingress(name: str, ns: str) -> tuple[bytes, dict[str, Any]]:
    meta, shown = object_meta(name, ns)
    backend = m(4, s(1, name), m(2, s(1, ""), v(2, 80)))
    path = m(1, s(1, "/"), m(2, backend), s(3, "Prefix"))
    rule = m(3, s(1, "web.example.com"), m(2, m(1, path)))
    tls = m(2, s(1, "web.example.com"), s(2, f"{name}-tls"))
    raw = m(1, meta) + m(2, tls + rule + s(4, "traefik")) + m(3, m(1, b""))
    return wrap("networking.k8s.io/v1", "Ingress", raw), {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": shown,
        "spec": {
            "tls": [{"hosts": ["web.example.com"], "secretName": f"{name}-tls"}],
            "rules": [
                {
                    "host": "web.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": name, "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
            "ingressClassName": "traefik",
        },
        "status": {"loadBalancer": {}},
    }


def scheduled_pod(name: str, ns: str) -> tuple[bytes, dict[str, Any]]:
    """A Pod as admission leaves it: a projected service-account token volume, a downward API
    volume, topology spread, DNS config, host aliases, readiness gates, a preStop hook."""
    meta, shown = object_meta(name, ns)
    token = m(4, s(1, ""), v(2, 3607), s(3, "token"))
    root_ca = m(3, m(1, s(1, "kube-root-ca.crt")), m(2, s(1, "ca.crt"), s(2, "ca.crt")))
    field_ref = m(2, s(1, "v1"), s(2, "metadata.namespace"))
    projected = m(
        26, m(1, token), m(1, root_ca), m(1, m(2, m(1, s(1, "namespace"), field_ref))), v(2, 420)
    )
    downward = m(16, m(1, s(1, "labels"), m(2, s(1, "v1"), s(2, "metadata.labels"))))
    container = (
        s(1, "app")
        + s(2, "busybox")
        + m(12, m(2, m(1, s(1, "/bin/sh"), s(1, "-c"), s(1, "sleep 5"))))
    )
    spread = m(
        33,
        v(1, 1),
        s(2, "kubernetes.io/hostname"),
        s(3, "DoNotSchedule"),
        m(4, string_map(1, {"app": name})),
    )
    spec = (
        m(1, s(1, "kube-api-access"), m(2, projected))
        + m(1, s(1, "podinfo"), m(2, downward))
        + m(2, container)
        + m(23, s(1, "10.0.0.5"), s(2, "db.local"))
        + m(26, s(1, "1.1.1.1"), s(2, "svc.local"), m(3, s(1, "ndots"), s(2, "2")))
        + m(28, s(1, "example.com/ready"))
        + spread
    )
    raw = m(1, meta) + m(2, spec) + m(3, s(1, "Running"))
    return wrap("v1", "Pod", raw), {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": shown,
        "spec": {
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "namespace",
                                            "fieldRef": {
                                                "apiVersion": "v1",
                                                "fieldPath": "metadata.namespace",
                                            },
                                        }
                                    ]
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                },
                {
                    "name": "podinfo",
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "labels",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"},
                            }
                        ]
                    },
                },
            ],
            "containers": [
                {
                    "name": "app",
                    "image": "busybox",
                    "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 5"]}}},
                }
            ],
            "hostAliases": [{"ip": "10.0.0.5", "hostnames": ["db.local"]}],
            "dnsConfig": {
                "nameservers": ["1.1.1.1"],
                "searches": ["svc.local"],
                "options": [{"name": "ndots", "value": "2"}],
            },
            "readinessGates": [{"conditionType": "example.com/ready"}],
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": name}},
                }
            ],
        },
        "status": {"phase": "Running"},
    }


def with_affinity(name: str, ns: str) -> bytes:
    """A Deployment whose pod template sets affinity (PodSpec field 18): not decoded."""
    meta, _shown = object_meta(name, ns)
    template = m(1, s(1, "")) + m(2, m(2, s(1, "c"), s(2, "busybox")), m(18, m(1, b"")))
    return wrap("apps/v1", "Deployment", m(1, meta) + m(2, m(3, template)))


def without_server_fields(body: dict[str, Any], keep_owners: bool = False) -> dict[str, Any]:
    """What extract must print: status and the server-set metadata gone."""
    server = {"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"}
    if not keep_owners:
        server.add("ownerReferences")
    stripped = {k: val for k, val in body.items() if k != "status"}
    stripped["metadata"] = {k: val for k, val in body["metadata"].items() if k not in server}
    return stripped


BUILT_INS = {
    "Namespace": lambda: namespace("shop", team="a"),
    "Secret": lambda: secret("db", "shop", {"password": bytes(range(256)), "user": b"admin"}),
    "ConfigMap": lambda: config_map(
        "web-config", "shop", {"a.conf": "x=1\n", "empty": ""}, {"blob": b"\x00\xff"}
    ),
    "ServiceAccount": lambda: service_account("deployer", "shop"),
    "Role": lambda: role("reader", "shop"),
    "RoleBinding": lambda: role_binding("reader", "shop"),
    "ClusterRole": lambda: role("cluster-reader"),
    "ClusterRoleBinding": lambda: role_binding("cluster-reader"),
    "Service": lambda: service("web", "shop"),
    "PersistentVolumeClaim": lambda: pvc("data", "shop"),
    "Deployment": lambda: deployment("web", "shop"),
    "StatefulSet": lambda: stateful_set("db", "shop"),
    "DaemonSet": lambda: daemon_set("agent", "shop"),
    "Job": lambda: job("migrate", "shop"),
    "CronJob": lambda: cron_job("report", "shop"),
    "Ingress": lambda: ingress("web", "shop"),
    "Pod": lambda: scheduled_pod("standalone", "shop"),
}
