"""`k3s-backup verify`: re-hash every copy where it is stored and compare with its manifest,
once that manifest authenticates (recovery_key.py): a copy the backup host forged, renamed or
altered is named as such."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from k3s_backup.catalogue.inventory import (
    LOCAL,
    Copy,
    LocalManifests,
    local_copies,
    local_manifests,
    read_target_manifest,
    target_copies,
)
from k3s_backup.catalogue.recovery_key import NotAuthentic, Trust
from k3s_backup.cli_options import Context, json_option, pass_context
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode, TargetUnreachable
from k3s_backup.formats.snapshot import check_snapshot
from k3s_backup.plumbing.streams import sha256_stream
from k3s_backup.report import Reporter
from k3s_backup.targets.base import Target
from k3s_backup.targets.retry import on_every_target, without_name


@dataclass(frozen=True)
class Finding:
    name: str
    location: str
    ok: bool
    problem: str | None = None


def _local_problem(manifests: LocalManifests, copy: Copy, path: Path) -> str | None:
    """What is wrong with a local snapshot: its own check (the SHA-256 trailer, SQLite's
    integrity_check), then the manifest recorded when it was made, which a whole valid
    snapshot of another moment put under its name does not match."""
    check_snapshot(path)
    recorded = manifests.recorded(copy.name)
    if recorded is None:  # made before manifests were recorded: record one now
        manifests.get(copy.name)
        return None
    size = path.stat().st_size
    if size != recorded.size:
        return f"size {size} differs from its recorded manifest's {recorded.size} (truncated?)"
    with path.open("rb") as stream:
        digest = sha256_stream(stream)
    if digest != recorded.sha256:
        return (
            f"SHA-256 {digest} differs from its recorded manifest's {recorded.sha256}"
            " (corrupted or replaced)"
        )
    return None


def _verify_local(config: Config) -> list[Finding]:
    findings = []
    manifests = local_manifests(config)
    for copy in local_copies(config.snapshot_dir, config.cluster_name):
        try:
            problem = _local_problem(manifests, copy, config.snapshot_dir / copy.name.filename)
        except (BackupError, OSError) as exc:
            problem = str(exc)
        findings.append(Finding(copy.name.filename, LOCAL, problem is None, problem))
    return findings


def _verify_copy(
    target: Target, filename: str, size: int, has_manifest: bool, trust: Trust, encrypting: bool
) -> Finding:
    """One copy's finding; a manifest that cannot be read (or is refused) is this copy's
    problem, not a reason to stop verifying the target's others."""
    try:
        problem = _copy_problem(target, filename, size, has_manifest, trust, encrypting)
    except TargetUnreachable:
        raise  # the link, not this copy: the target's whole verification is tried again
    except BackupError as exc:
        problem = str(exc)
    return Finding(filename, target.name, problem is None, problem)


def _copy_problem(
    target: Target, filename: str, size: int, has_manifest: bool, trust: Trust, encrypting: bool
) -> str | None:
    if not has_manifest:
        return "manifest missing: cannot verify"
    manifest = read_target_manifest(target, filename)
    try:
        trust.check(manifest, filename, target.name, encrypting)
    except NotAuthentic as exc:
        return without_name(target.name, exc)
    if size != manifest.size:
        return f"size {size} differs from the manifest's {manifest.size} (truncated?)"
    stored = target.sha256(filename)
    if stored != manifest.sha256:
        return f"SHA-256 {stored} differs from the manifest's {manifest.sha256} (corrupted)"
    return None


def _verify_target(config: Config, target: Target, trust: Trust) -> list[Finding]:
    encrypting = bool(config.target(target.name).age_recipients)
    return [
        _verify_copy(target, c.name.filename, c.size, c.has_manifest, trust, encrypting)
        for c in target_copies(target, config.cluster_name)
    ]


def verify_copies(config: Config, env: Environment, as_json: bool) -> ExitCode:
    findings = _verify_local(config)
    trust = Trust.of(config.recovery_key_file)
    reporter = Reporter(env, None)
    findings += on_every_target(
        config,
        reporter,
        lambda target: _verify_target(config, target, trust),
        lambda name, said: [Finding("*", name, False, said)],
    )
    if as_json:
        env.stdout.write(json.dumps([asdict(f) for f in findings], indent=2) + "\n")
    else:
        for f in findings:
            line = f"{'OK  ' if f.ok else 'FAIL'}  {f.location:<12}  {f.name}"
            env.stdout.write(line + (f": {f.problem}" if f.problem else "") + "\n")
    bad = [f for f in findings if not f.ok]
    for f in bad:
        env.stderr.write(f"error: {f.location}: {f.name}: {f.problem}\n")
    return ExitCode.FAILED if bad else ExitCode.OK


@click.command("verify")
@json_option("A JSON array of findings.")
@pass_context
def command(ctx: Context, as_json: bool) -> int:
    """Re-hash every copy where it is stored and compare with its manifest."""
    return verify_copies(ctx.config(), ctx.env, as_json)
