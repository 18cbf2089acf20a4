"""`k3s-backup inspect`: what is in a snapshot, read in pure Python (no etcd binary needed).

The summary (revision, keys, Kubernetes objects by resource and namespace), `--keys PREFIX`
(the live keys under a prefix) and `--get KEY` (one object decoded) all read the latest revision.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from k3s_backup.catalogue.opening import ConfigLoader, OpenedSnapshot, damage_named, open_snapshot
from k3s_backup.catalogue.reading import Reading, read_snapshot, show_key
from k3s_backup.cli_options import (
    AGE_IDENTITY_OPTION,
    ALLOW_UNAUTHENTICATED_OPTION,
    INSPECT_TIMEOUT_OPTION,
    Context,
    pass_context,
)
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode
from k3s_backup.formats import kubernetes
from k3s_backup.formats.etcd_db import EtcdDb, KeyValue
from k3s_backup.plumbing.deadline import INSPECT_TIMEOUT, time_limit
from k3s_backup.report import human_size


def resource_counts(reading: Reading) -> tuple[Counter[tuple[str, str]], int]:
    """Objects per (resource, namespace; "" when cluster-scoped), and keys outside /registry/."""
    counts: Counter[tuple[str, str]] = Counter()
    other = 0
    for key in reading.state.keys:
        parsed = kubernetes.parse_key(show_key(key))
        if parsed is None:
            other += 1
        else:
            counts[(parsed.resource, parsed.namespace or "")] += 1
    return counts, other


def summary_json(reading: Reading) -> dict[str, Any]:
    counts, other = resource_counts(reading)
    encrypted = Counter(
        live.tag.split(":", 1)[1] for live in reading.state.keys.values() if live.tag
    )
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
        "keys": len(reading.state.keys),
        "revisions": reading.state.revisions,
        "tombstones": reading.state.tombstones,
        "bucket_entries": reading.bucket_entries,
        "objects": sum(counts.values()),
        "other_keys": other,
        "encrypted": dict(sorted(encrypted.items())),
        "resources": [
            {"resource": resource, "namespace": namespace or None, "count": count}
            for (resource, namespace), count in sorted(counts.items())
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


def _list_keys(reading: Reading, as_json: bool, env: Environment) -> None:
    rows = sorted(reading.state.keys.items())
    if as_json:
        listing = [
            {
                "key": show_key(key),
                "create_revision": live.create_revision,
                "mod_revision": live.mod_revision,
                "version": live.version,
                "size": live.size,
                "encrypted": bool(live.tag),
            }
            for key, live in rows
        ]
        env.stdout.write(json.dumps(listing, indent=2) + "\n")
        return
    for key, _live in rows:
        env.stdout.write(show_key(key) + "\n")


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
    load_config: ConfigLoader,
    env: Environment,
    as_json: bool,
    keys_prefix: str | None,
    get_key: str | None,
    identity: Path | None = None,
    allow_unauthenticated: bool = False,
    timeout: float = INSPECT_TIMEOUT,
) -> ExitCode:
    with (
        time_limit(timeout, f"inspect of {name}"),
        open_snapshot(name, load_config, env, identity, allow_unauthenticated) as copy,
    ):
        if get_key is not None:
            return _get(copy, get_key, as_json, env)
        prefix = keys_prefix.encode(errors="surrogateescape") if keys_prefix else b""
        with damage_named(copy), EtcdDb(copy.path) as db:
            reading = read_snapshot(copy, db, prefix)
    if keys_prefix is not None:
        _list_keys(reading, as_json, env)
    elif as_json:
        env.stdout.write(json.dumps(summary_json(reading), indent=2) + "\n")
    else:
        _write_summary(summary_json(reading), env)
    return ExitCode.OK


@click.command("inspect")
@click.argument("snapshot")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.option("--keys", "keys_prefix", metavar="PREFIX", help="List the live keys under PREFIX.")
@click.option("--get", "get_key", metavar="KEY", help="Print one object, decoded.")
@AGE_IDENTITY_OPTION
@ALLOW_UNAUTHENTICATED_OPTION
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
    return inspect(
        snapshot,
        ctx.config,
        ctx.env,
        as_json,
        keys_prefix,
        get_key,
        identity,
        allow_unauthenticated,
        timeout,
    )
