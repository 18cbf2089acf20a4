"""Kubernetes objects as the API server stores them in etcd (see shared/notes/etcd-format.md).

Keys: `/registry/[<group>/]<resource>/[<namespace>/]<name>`. Values: JSON (custom resources,
CRDs, APIServices), `k8s\\x00` + a `runtime.Unknown` protobuf (built-in types), or, when
encrypted at rest, `k8s:enc:<provider>:v1:<key name>:` + ciphertext, which we name, never guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from k3s_backup.formats.etcd_db import signed64
from k3s_backup.formats.protowire import ProtoError, fields

REGISTRY_PREFIX = "/registry/"
PROTOBUF_MAGIC = b"k8s\x00"
_ENCRYPTED = re.compile(rb"k8s:enc:([A-Za-z0-9_-]+):(v[0-9]+):([^:]*):")
# Resources stored one level deeper than their name suggests.
_SUB_RESOURCES = {"services": ("specs", "endpoints")}

JSON = "json"
PROTOBUF = "protobuf"
ENCRYPTED = "encrypted"
RAW = "raw"


@dataclass(frozen=True)
class ObjectKey:
    resource: str  # "secrets", "services/specs", "apiservices.apiregistration.k8s.io"
    namespace: str | None  # None for cluster-scoped objects
    name: str


def parse_key(key: str) -> ObjectKey | None:
    """Resource, namespace and name of a `/registry/...` key; None for any other key."""
    if not key.startswith(REGISTRY_PREFIX):
        return None
    parts = key[len(REGISTRY_PREFIX) :].split("/")
    group = parts.pop(0) if len(parts) > 2 and "." in parts[0] else None
    resource = parts.pop(0)
    if parts and len(parts) > 1 and parts[0] in _SUB_RESOURCES.get(resource, ()):
        resource = f"{resource}/{parts.pop(0)}"
    if not parts or not all(parts):
        return None
    if group:
        resource = f"{resource}.{group}"
    if len(parts) == 1:
        return ObjectKey(resource, None, parts[0])
    return ObjectKey(resource, parts[0], "/".join(parts[1:]))


@dataclass(frozen=True)
class StoredObject:
    """What can be said about a stored value without the encryption key."""

    encoding: str  # json | protobuf | encrypted | raw
    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    provider: str | None = None  # encrypted: e.g. "aescbc"
    key_name: str | None = None  # encrypted: e.g. "aescbckey"
    problem: str | None = None  # why a value that looked decodable was not


def _text(value: int | bytes) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else None


def _timestamp(value: int | bytes) -> str | None:
    """A metav1.Time message (seconds 1, nanos 2) as RFC 3339 UTC."""
    if not isinstance(value, bytes):
        return None
    seconds = next((v for n, _w, v in fields(value) if n == 1 and isinstance(v, int)), 0)
    moment = datetime.fromtimestamp(signed64(seconds), UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _label(entry: int | bytes) -> tuple[str, str] | None:
    if not isinstance(entry, bytes):
        return None
    pair = {n: _text(v) or "" for n, _w, v in fields(entry)}
    return pair.get(1, ""), pair.get(2, "")


def decode_object_meta(data: bytes) -> dict[str, Any]:
    """The ObjectMeta fields an operator looks for: name, namespace, uid, labels, creation."""
    meta: dict[str, Any] = {"labels": {}}
    names = {1: "name", 3: "namespace", 5: "uid"}
    for number, _wire, value in fields(data):
        if number in names:
            meta[names[number]] = _text(value)
        elif number == 8:
            meta["creation_timestamp"] = _timestamp(value)
        elif number == 11 and (pair := _label(value)):
            meta["labels"][pair[0]] = pair[1]
    return meta


def _decode_protobuf(data: bytes) -> StoredObject:
    type_meta: dict[int, str | None] = {}
    raw = b""
    for number, _wire, value in fields(data[len(PROTOBUF_MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            type_meta = {n: _text(v) for n, _w, v in fields(value)}
        elif number == 2 and isinstance(value, bytes):
            raw = value
    object_meta = next((v for n, _w, v in fields(raw) if n == 1 and isinstance(v, bytes)), b"")
    return StoredObject(
        encoding=PROTOBUF,
        api_version=type_meta.get(1),
        kind=type_meta.get(2),
        **decode_object_meta(object_meta),
    )


def _string(value: object) -> str | None:
    """A JSON field that should be a string; anything else is shown as JSON text."""
    return value if isinstance(value, str) or value is None else json.dumps(value)


def _decode_json(data: bytes) -> StoredObject:
    document = json.loads(data)
    if not isinstance(document, dict):
        return StoredObject(encoding=JSON)
    meta = document.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    labels = meta.get("labels")
    return StoredObject(
        encoding=JSON,
        api_version=_string(document.get("apiVersion")),
        kind=_string(document.get("kind")),
        name=_string(meta.get("name")),
        namespace=_string(meta.get("namespace")),
        uid=_string(meta.get("uid")),
        creation_timestamp=_string(meta.get("creationTimestamp")),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )


def decode_value(data: bytes) -> StoredObject:
    """Identify a stored value: encrypted values are named, not guessed at."""
    if match := _ENCRYPTED.match(data):
        key_name = match[3].decode(errors="backslashreplace")  # any bytes but ':'
        return StoredObject(encoding=ENCRYPTED, provider=match[1].decode(), key_name=key_name)
    if data.startswith(PROTOBUF_MAGIC):
        try:
            return _decode_protobuf(data)
        # OverflowError, OSError: a creation time past what the platform's time_t can hold
        except (ProtoError, ValueError, OverflowError, OSError) as exc:
            return StoredObject(encoding=PROTOBUF, problem=f"undecodable protobuf: {exc}")
    if data.lstrip()[:1] == b"{":
        try:
            return _decode_json(data)
        except RecursionError:
            return StoredObject(encoding=RAW, problem="not valid JSON: nested too deeply")
        except (ValueError, UnicodeDecodeError) as exc:
            return StoredObject(encoding=RAW, problem=f"not valid JSON: {exc}")
    return StoredObject(encoding=RAW)


def is_encrypted(data: bytes) -> bool:
    return _ENCRYPTED.match(data) is not None
