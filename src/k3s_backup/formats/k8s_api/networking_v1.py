"""networking.k8s.io/v1 (k8s.io/api/networking/v1/generated.proto)."""

from __future__ import annotations

from k3s_backup.formats.k8s_api.fields import (
    INT,
    Table,
    f,
    rep,
    status,
)

NETWORKING: dict[str, Table] = {
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
