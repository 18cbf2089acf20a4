"""The vocabulary of the field tables: a message's field numbers, each with its JSON name and
type, read from k8s.io/api's and apimachinery's `generated.proto`.

Every field a message may carry is either decoded, dropped on purpose (`status`: extract removes
it anyway) or named as not decoded: a field outside its table makes the whole object undecodable
(formats/k8s_objects.py; never a half-decoded object).

Checked number by number against generated.proto: core/v1 of k8s.io/api v0.22, apps/v1 and
batch/v1 of v0.26, rbac/v1 and networking/v1 of a 2025 tree, apimachinery's meta/v1 of v0.22;
core/v1's newer fields (PodSpec to 42, Container to 25, PodSecurityContext, ServiceSpec,
VolumeSource, VolumeMount, VolumeProjection, TopologySpreadConstraint) against kubernetes/
kubernetes' 2025 tree. Not read there (from the API reference): JobSpec 12-16, SecurityContext
12, Lifecycle 3, LifecycleHandler 4, ResourceRequirements 3, PersistentVolumeClaimSpec 8-9,
GRPCAction.
"""

from __future__ import annotations

from dataclasses import dataclass

# Scalar field types; any other type name is a message of the table.
STRING, BYTES, INT, BOOL = "string", "bytes", "int", "bool"
TIME, QUANTITY, INT_OR_STRING, FIELDS_V1 = "Time", "Quantity", "IntOrString", "FieldsV1"
DROPPED = "dropped"  # known, removed by design (status)
NOT_DECODED = "not-decoded"  # known, but this decoder does not read it: the object is refused
SCALARS = {STRING, BYTES, INT, BOOL, TIME, QUANTITY, INT_OR_STRING, FIELDS_V1}


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
