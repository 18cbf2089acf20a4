"""`k3s-backup list`: every copy of ours, locally and on each target."""

from __future__ import annotations

import json
from typing import Any

import click

from k3s_backup.catalogue.inventory import (
    LOCAL,
    local_copies,
    local_manifests,
    read_target_manifest,
    target_copies,
)
from k3s_backup.catalogue.manifest import Manifest, created_iso
from k3s_backup.catalogue.recovery_key import NotAuthentic, Trust
from k3s_backup.cli_options import Context, json_option, pass_context
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode
from k3s_backup.report import Reporter, human_size, shown_time
from k3s_backup.targets.base import Target
from k3s_backup.targets.retry import on_every_target


def _entry(
    name: str,
    location: str,
    size: int,
    unix: int,
    manifest: Manifest | None,
    authentic: str | None = None,
) -> dict[str, Any]:
    identity = manifest.identity if manifest else None
    return {
        "authentic": authentic,
        "name": name,
        "location": location,
        "size": size,
        "created": created_iso(unix),
        "sha256": manifest.sha256 if manifest else None,
        "cluster_uid": identity.uid if identity else None,
        "cluster_created": (identity.created or None) if identity else None,
        "objects": identity.objects if identity and identity.kubernetes else None,
    }


def _with_known_identity(manifest: Manifest, known: dict[str, Manifest]) -> Manifest:
    """A target's manifest of an older version takes the identity of the same local snapshot."""
    local = known.get(manifest.snapshot)
    if manifest.identity is None and local is not None:
        return manifest.with_identity(local.identity)
    return manifest


def _authentic(
    trust: Trust, manifest: Manifest | None, name: str, location: str, encrypting: bool
) -> str:
    """`yes`, `no` (no MAC: made before copies were authenticated) or `FORGED` (or renamed,
    altered, another key's): what `fetch` and `restore` would believe of this copy."""
    if manifest is None:
        return "no"
    if not manifest.mac:
        return "no"
    try:
        trust.check(manifest, name, location, encrypting)
    except NotAuthentic:
        return "FORGED"
    return "yes"


def _target_entries(
    config: Config, target: Target, trust: Trust, known: dict[str, Manifest]
) -> list[dict[str, Any]]:
    encrypting = bool(config.target(target.name).age_recipients)
    entries = []
    for copy in target_copies(target, config.cluster_name):
        name = copy.name.filename
        manifest = read_target_manifest(target, name) if copy.has_manifest else None
        authentic = _authentic(trust, manifest, name, target.name, encrypting)
        if manifest is not None:
            manifest = _with_known_identity(manifest, known)
        entries.append(_entry(name, target.name, copy.size, copy.name.unix, manifest, authentic))
    return entries


def collect(config: Config, env: Environment) -> tuple[list[dict[str, Any]], list[str]]:
    """All copies, and the locations that could not be read."""
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    manifests = local_manifests(config)
    known: dict[str, Manifest] = {}
    for copy in local_copies(config.snapshot_dir, config.cluster_name):
        manifests.identity(copy.name)  # read from the file once if an older manifest lacks it
        known[copy.name.filename] = local = manifests.get(copy.name)
        entries.append(_entry(copy.name.filename, LOCAL, copy.size, copy.name.unix, local))
    trust = Trust.of(config.recovery_key_file)
    reporter = Reporter(env, None)

    def failed(name: str, said: str) -> list[dict[str, Any]]:
        problems.append(f"{name}: {said}")
        return []

    entries += on_every_target(
        config, reporter, lambda target: _target_entries(config, target, trust, known), failed
    )
    return entries, problems


def _cluster(entry: dict[str, Any]) -> str:
    """The start of the cluster UID (enough to tell clusters apart; `--cluster` takes it)."""
    uid = entry["cluster_uid"]
    return "unknown" if uid is None else (uid[:8] or "none")


def _count(objects: int | None) -> str:
    return "-" if objects is None else str(objects)


def list_copies(config: Config, env: Environment, as_json: bool) -> ExitCode:
    entries, problems = collect(config, env)
    if as_json:
        env.stdout.write(json.dumps(entries, indent=2) + "\n")
    else:
        width = max([len(e["name"]) for e in entries] + [4])
        env.stdout.write(
            f"{'NAME':<{width}}  {'LOCATION':<12}  {'SIZE':>10}  {'CREATED':<25}"
            f"  {'CLUSTER':<8}  {'OBJECTS':>7}  {'AUTH':<6}  CLUSTER CREATED\n"
        )
        for e in entries:
            env.stdout.write(
                f"{e['name']:<{width}}  {e['location']:<12}  {human_size(e['size']):>10}"
                f"  {shown_time(e['created']):<25}  {_cluster(e):<8}  {_count(e['objects']):>7}"
                f"  {e['authentic'] or '-':<6}  {shown_time(e['cluster_created'] or None)}\n"
            )
    for problem in problems:
        env.stderr.write(f"error: cannot list {problem}\n")
    return ExitCode.FAILED if problems else ExitCode.OK


@click.command("list")
@json_option("A JSON array of copies.")
@pass_context
def command(ctx: Context, as_json: bool) -> int:
    """List our snapshots locally and on every target."""
    return list_copies(ctx.config(), ctx.env, as_json)
