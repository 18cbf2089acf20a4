"""`k3s-backup inspect`: what is in a snapshot, read in pure Python (no etcd binary needed).

The summary (revision, keys, Kubernetes objects by resource and namespace), `--keys PREFIX`
(the live keys under a prefix) and `--get KEY` (one object decoded) all read the latest revision.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from k3s_backup.catalogue.opening import OpenedSnapshot, SnapshotAccess, damage_named
from k3s_backup.catalogue.reading import Reading, classify, reading_of, show_key
from k3s_backup.cli_options import (
    INSPECT_TIMEOUT_OPTION,
    Context,
    copy_access_options,
    json_option,
    pass_context,
)
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode
from k3s_backup.formats import kubernetes
from k3s_backup.formats.etcd_db import EtcdDb, KeyValue, LiveState
from k3s_backup.formats.live_index import LiveIndex
from k3s_backup.plumbing.deadline import INSPECT_TIMEOUT, time_limit
from k3s_backup.report import human_size

KEYS_TABLE = "keys"  # of the LiveIndex the summary and --keys read


@dataclass
class Census:
    """The live keys counted a row at a time from a LiveIndex: the summary's memory stays
    flat in the snapshot's size (a LiveState holds every key)."""

    keys: int = 0
    objects: Counter[tuple[str, str]] = field(default_factory=Counter)  # (resource, namespace)
    other: int = 0  # keys outside /registry/
    encrypted: Counter[str] = field(default_factory=Counter)  # by provider


def census_of(index: LiveIndex) -> Census:
    census = Census()
    for key, _revision, tag in index.tagged(KEYS_TABLE):
        census.keys += 1
        parsed = kubernetes.parse_key(show_key(key))
        if parsed is None:
            census.other += 1
        else:
            census.objects[(parsed.resource, parsed.namespace or "")] += 1
        if tag:
            census.encrypted[tag.split(":", 1)[1]] += 1
    return census


def summary_json(reading: Reading, census: Census) -> dict[str, Any]:
    return {
        "name": reading.copy.name,
        "location": reading.copy.location,
        "verified": reading.copy.verified,
        "file_size": reading.copy.file_size,
        "database_size": reading.database_size,
        "page_size": reading.page_size,
        "revision": reading.revision,
        "compact_revision": reading.compact_revision,
        "consistent_index": reading.consistent_index,
        "keys": census.keys,
        "revisions": reading.state.revisions,
        "tombstones": reading.state.tombstones,
        "bucket_entries": reading.bucket_entries,
        "objects": sum(census.objects.values()),
        "other_keys": census.other,
        "encrypted": dict(sorted(census.encrypted.items())),
        "resources": [
            {"resource": resource, "namespace": namespace or None, "count": count}
            for (resource, namespace), count in sorted(census.objects.items())
        ],
    }


def _write_summary(data: dict[str, Any], env: Environment) -> None:
    out = env.stdout
    compacted = data["compact_revision"]
    out.write(f"snapshot   {data['name']} ({data['location']}; {data['verified']})\n")
    out.write(
        f"size       {human_size(data['file_size'])} (database {human_size(data['database_size'])},"
        f" pages of {data['page_size']} bytes)\n"
    )
    out.write(
        f"revision   {data['revision']}"
        + (f" (history compacted at {compacted})" if compacted else " (never compacted)")
        + "\n"
    )
    out.write(
        f"keys       {data['keys']} at revision {data['revision']} ({data['revisions']} revisions"
        f" stored, {data['tombstones']} deletions)\n"
    )
    for provider, count in data["encrypted"].items():
        out.write(f"encrypted  {count} values encrypted at rest ({provider})\n")
    out.write(
        f"objects    {data['objects']} Kubernetes objects,"
        f" {data['other_keys']} other keys (outside /registry/)\n"
    )
    if not data["resources"]:
        return
    width = max(len(r["resource"]) for r in data["resources"]) + 2
    out.write(f"\n{'RESOURCE':<{width}}{'NAMESPACE':<24}{'OBJECTS':>8}\n")
    for row in data["resources"]:
        namespace = row["namespace"] or "(cluster)"
        out.write(f"{row['resource']:<{width}}{namespace:<24}{row['count']:>8}\n")


def _list_keys(db: EtcdDb, index: LiveIndex, count: int, as_json: bool, env: Environment) -> None:
    """One key a line (or a JSON list, as json.dumps indents it), streamed in key order."""
    out = env.stdout
    if as_json:
        out.write("[")
    for row_number, (key, revision_key, tag) in enumerate(index.tagged(KEYS_TABLE)):
        if not as_json:
            out.write(show_key(key) + "\n")
            continue
        kv = db.value_at(revision_key)
        row = {
            "key": show_key(key),
            "create_revision": kv.create_revision,
            "mod_revision": kv.mod_revision,
            "version": kv.version,
            "size": len(kv.value),
            "encrypted": bool(tag),
        }
        text = json.dumps(row, indent=2).replace("\n", "\n  ")
        out.write(("," if row_number else "") + "\n  " + text)
    if as_json:
        out.write("\n]\n" if count else "]\n")


def object_json(kv: KeyValue) -> dict[str, Any]:
    decoded = kubernetes.decode_value(kv.value)
    result: dict[str, Any] = {
        "key": show_key(kv.key),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "lease": kv.lease,
        "size": len(kv.value),
        # Kubernetes stores resourceVersion empty: the real one is the mod revision.
        "object": {**asdict(decoded), "resource_version": str(kv.mod_revision)},
    }
    if decoded.encoding == kubernetes.JSON:
        result["value"] = json.loads(kv.value)
    elif decoded.encoding == kubernetes.RAW:
        result["value_base64"] = base64.b64encode(kv.value).decode()
    return result


def _write_object(kv: KeyValue, env: Environment) -> None:
    data = object_json(kv)
    obj = data["object"]
    out = env.stdout
    out.write(f"key              {data['key']}\n")
    if obj["encoding"] == kubernetes.ENCRYPTED:
        out.write(
            f"encoding         encrypted at rest (provider {obj['provider']}, key"
            f" {obj['key_name']}): it cannot be read without that key\n"
        )
    else:
        out.write(f"encoding         {obj['encoding']}\n")
    if obj["problem"]:
        out.write(f"problem          {obj['problem']}\n")
    fields = [
        ("apiVersion", obj["api_version"]),
        ("kind", obj["kind"]),
        ("namespace", obj["namespace"]),
        ("name", obj["name"]),
        ("uid", obj["uid"]),
        ("created", obj["creation_timestamp"]),
    ]
    for label, value in fields:
        if value:
            out.write(f"{label:<17}{value}\n")
    if obj["encoding"] != kubernetes.ENCRYPTED:
        out.write(f"resourceVersion  {obj['resource_version']}\n")
    if obj["labels"]:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(obj["labels"].items()))
        out.write(f"labels           {labels}\n")
    out.write(
        f"revisions        created {data['create_revision']}, modified {data['mod_revision']},"
        f" version {data['version']}, lease {data['lease']}, {data['size']} bytes\n"
    )
    if obj["encoding"] == kubernetes.JSON:
        out.write(kv.value.decode(errors="replace").rstrip("\n") + "\n")
    elif obj["encoding"] == kubernetes.RAW:
        out.write(kv.value.decode(errors="backslashreplace").rstrip("\n") + "\n")


def _get(copy: OpenedSnapshot, key: str, as_json: bool, env: Environment) -> ExitCode:
    with damage_named(copy), EtcdDb(copy.path) as db:
        found = db.latest(key.encode(errors="surrogateescape"))
    if found is None:
        env.stderr.write(f"error: {key} is not in {copy.name}\n")
        return ExitCode.FAILED
    revision, kv = found
    if revision.tombstone:
        env.stderr.write(f"error: {key} was deleted at revision {revision.main} in {copy.name}\n")
        return ExitCode.FAILED
    if as_json:
        env.stdout.write(json.dumps(object_json(kv), indent=2) + "\n")
    else:
        _write_object(kv, env)
    return ExitCode.OK


def inspect(
    name: str,
    access: SnapshotAccess,
    as_json: bool,
    keys_prefix: str | None,
    get_key: str | None,
    timeout: float = INSPECT_TIMEOUT,
) -> ExitCode:
    env = access.env
    with time_limit(timeout, f"inspect of {name}"), access.open(name) as copy:
        if get_key is not None:
            return _get(copy, get_key, as_json, env)
        prefix = keys_prefix.encode(errors="surrogateescape") if keys_prefix else b""
        seen = LiveState()  # history counts only: the keys go to the index, not its dict
        with damage_named(copy), EtcdDb(copy.path) as db, LiveIndex() as index:
            count = index.load(KEYS_TABLE, db, prefix, classify=classify, seen=seen)
            if keys_prefix is not None:
                _list_keys(db, index, count, as_json, env)
                return ExitCode.OK
            reading, census = reading_of(copy, db, seen), census_of(index)
    if as_json:
        env.stdout.write(json.dumps(summary_json(reading, census), indent=2) + "\n")
    else:
        _write_summary(summary_json(reading, census), env)
    return ExitCode.OK


@click.command("inspect")
@click.argument("snapshot")
@json_option("JSON instead of text.")
@click.option("--keys", "keys_prefix", metavar="PREFIX", help="List the live keys under PREFIX.")
@click.option("--get", "get_key", metavar="KEY", help="Print one object, decoded.")
@copy_access_options
@INSPECT_TIMEOUT_OPTION
@pass_context
def command(
    ctx: Context,
    snapshot: str,
    as_json: bool,
    keys_prefix: str | None,
    get_key: str | None,
    identity: Path | None,
    allow_unauthenticated: bool,
    timeout: float,
) -> int:
    """What a snapshot holds: revision, keys, Kubernetes objects (no etcd needed).

    SNAPSHOT is a file, one of our snapshot names or a unique prefix of one (fetched and
    verified from wherever a good copy is), or latest.
    """
    if keys_prefix is not None and get_key is not None:
        raise click.UsageError("--keys and --get cannot be combined")
    access = SnapshotAccess(ctx.config, ctx.env, identity, allow_unauthenticated)
    return inspect(snapshot, access, as_json, keys_prefix, get_key, timeout)
