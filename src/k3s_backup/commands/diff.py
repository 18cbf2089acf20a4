"""`k3s-backup diff A B`: objects added, removed and changed between two snapshots, grouped by
resource and namespace. Changed = a different mod revision AND different bytes (a no-op update
bumps the revision alone and is not a change)."""

from __future__ import annotations

import json
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from k3s_backup.catalogue.opening import SnapshotAccess, damage_named
from k3s_backup.catalogue.reading import Reading, read_snapshot, show_key
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
from k3s_backup.formats.etcd_db import EtcdDb
from k3s_backup.plumbing.deadline import INSPECT_TIMEOUT, time_limit

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
_MARKS = {ADDED: "+", REMOVED: "-", CHANGED: "~"}
OTHER = "(outside /registry/)"


def changes(old: Reading, new: Reading, old_db: EtcdDb, new_db: EtcdDb) -> dict[str, list[bytes]]:
    """Keys added, removed, and changed (a new mod revision with different bytes: only those
    candidates' values are read, so a diff costs two passes and a few lookups)."""
    before, after = old.state.keys, new.state.keys
    changed = []
    for key in before.keys() & after.keys():
        if before[key].mod_revision == after[key].mod_revision:
            continue
        old_value = old_db.value_at(before[key].revision_key).value
        if old_value != new_db.value_at(after[key].revision_key).value:
            changed.append(key)
    return {
        ADDED: sorted(after.keys() - before.keys()),
        REMOVED: sorted(before.keys() - after.keys()),
        CHANGED: sorted(changed),
    }


def _group_of(key: bytes) -> tuple[str, str, str]:
    """(resource, namespace, name) for grouping; other keys form one group."""
    text = show_key(key)
    parsed = kubernetes.parse_key(text)
    if parsed is None:
        return OTHER, "", text
    return parsed.resource, parsed.namespace or "", parsed.name


def grouped(found: dict[str, list[bytes]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(
        lambda: {ADDED: [], REMOVED: [], CHANGED: []}
    )
    for kind, keys in found.items():
        for key in keys:
            resource, namespace, _name = _group_of(key)
            groups[(resource, namespace)][kind].append(show_key(key))
    return [
        {"resource": resource, "namespace": namespace or None, **lists}
        for (resource, namespace), lists in sorted(groups.items())
    ]


def _side(reading: Reading) -> dict[str, Any]:
    return {
        "name": reading.copy.name,
        "location": reading.copy.location,
        "revision": reading.revision,
        "keys": len(reading.state.keys),
    }


def _write_text(result: dict[str, Any], env: Environment) -> None:
    out = env.stdout
    for label in ("from", "to"):
        side = result[label]
        out.write(f"{label:<5} {side['name']} (revision {side['revision']}, {side['keys']} keys)\n")
    for group in result["groups"]:
        namespace = group["namespace"] or "(cluster)"
        out.write(f"\n{group['resource']}  {namespace}\n")
        for kind in (ADDED, REMOVED, CHANGED):
            for key in group[kind]:
                out.write(
                    f"  {_MARKS[kind]} {_group_of(key.encode(errors='surrogateescape'))[2]}\n"
                )
    counts = result["summary"]
    out.write(f"\n{counts[ADDED]} added, {counts[REMOVED]} removed, {counts[CHANGED]} changed\n")


def diff(
    first: str,
    second: str,
    access: SnapshotAccess,
    as_json: bool,
    timeout: float = INSPECT_TIMEOUT,
) -> ExitCode:
    env = access.env
    with (
        time_limit(timeout, f"diff of {first} and {second}"),
        access.open(first) as old_copy,
        access.open(second) as new_copy,
        ExitStack() as databases,
    ):
        with damage_named(old_copy):
            old_db = databases.enter_context(EtcdDb(old_copy.path))
            old = read_snapshot(old_copy, old_db)
        with damage_named(new_copy):
            new_db = databases.enter_context(EtcdDb(new_copy.path))
            new = read_snapshot(new_copy, new_db)
        with damage_named(old_copy), damage_named(new_copy):  # the lookups read both
            found = changes(old, new, old_db, new_db)
    result = {
        "from": _side(old),
        "to": _side(new),
        "summary": {kind: len(keys) for kind, keys in found.items()},
        "groups": grouped(found),
    }
    if as_json:
        env.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        _write_text(result, env)
    return ExitCode.OK


@click.command("diff")
@click.argument("old")
@click.argument("new")
@json_option("JSON instead of text.")
@copy_access_options
@INSPECT_TIMEOUT_OPTION
@pass_context
def command(
    ctx: Context,
    old: str,
    new: str,
    as_json: bool,
    identity: Path | None,
    allow_unauthenticated: bool,
    timeout: float,
) -> int:
    """Objects added, removed and changed from snapshot OLD to NEW."""
    access = SnapshotAccess(ctx.config, ctx.env, identity, allow_unauthenticated)
    return diff(old, new, access, as_json, timeout)
