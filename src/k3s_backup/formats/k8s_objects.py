"""Built-in Kubernetes objects decoded from their protobuf, as `kubectl get -o yaml` shows them.

The API server stores built-in types as `k8s\\x00` + a `runtime.Unknown` whose `raw` is the
object's own protobuf (shared/notes/etcd-format.md). The field tables (formats/k8s_api/, one
module per API group) give, per message, each field number's JSON name and type. A field outside
its table, or one named as not decoded, makes the whole object undecodable (never a half-decoded
object). Zero values of plain fields are left out, as Go's `omitempty` does; pointer fields
(`*bool`, `*int32`) are kept whenever they were written.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from k3s_backup.formats.etcd_db import signed64
from k3s_backup.formats.k8s_api import KINDS, MESSAGES
from k3s_backup.formats.k8s_api.fields import (
    BOOL,
    BYTES,
    DROPPED,
    INT,
    INT_OR_STRING,
    NOT_DECODED,
    QUANTITY,
    SCALARS,
    STRING,
    TIME,
    Field,
)
from k3s_backup.formats.protowire import LENGTH, VARINT, ProtoError, fields, read_varint

PROTOBUF_MAGIC = b"k8s\x00"
GO_ZERO_TIME = -62135596800  # time.Time{}: January 1 of year 1


class UndecodableError(ValueError):
    """The value is not an object this decoder reads completely."""


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
    if spec.type in SCALARS:
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


MAX_JSON_DEPTH = 200  # the deepest CRD schemas nest a few dozen levels; YAML renders 300


def _depth(document: Any) -> int:
    """How deeply `document` nests (iteratively: a crafted value must not exhaust the stack
    of what renders it)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            pending.extend((child, depth + 1) for child in children)
    return deepest


def decode_stored(value: bytes) -> dict[str, Any]:
    """The object a plain (decrypted) stored value holds: protobuf decoded, JSON (custom
    resources, CRDs) as stored. ValueError (UndecodableError for protobuf) if it cannot be
    read whole."""
    if value.startswith(PROTOBUF_MAGIC):
        return decode_object(value)
    if value.lstrip()[:1] == b"{":
        try:
            document = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        except RecursionError:
            document = None
        if document is None or _depth(document) > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if (
            isinstance(document, dict)
            and isinstance(document.get("metadata"), dict)
            and {"kind", "apiVersion"} <= set(document)
        ):
            return document
        raise ValueError("JSON without apiVersion, kind and metadata: not a Kubernetes object")
    raise ValueError("neither protobuf (k8s\\x00) nor JSON: not a Kubernetes object")
