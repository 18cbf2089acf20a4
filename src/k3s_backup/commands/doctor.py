"""`k3s-backup doctor [--json]`: the guide's troubleshooting section as code. Each check prints
OK / WARN / FAIL, what it saw, and the exact command that fixes it. Exit 1 on any FAIL. The
checks themselves live in diagnosis/, one module per area; this module runs them in order."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from k3s_backup.checks import FAIL, OK
from k3s_backup.cli_options import ROOT_OPTION, Context, epilog, json_option, pass_context
from k3s_backup.config import Config, load_config
from k3s_backup.diagnosis import datastore, node, schedule, targets
from k3s_backup.diagnosis.check import Check, Checks
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.scheduling import SystemPaths, config_file


def all_checks(config: Config, env: Environment, paths: SystemPaths) -> Checks:
    yield from schedule.schedule(config, env, paths)
    yield datastore.datastore(config)
    yield node.snapshot_dir(config)
    for target in config.targets:
        yield from targets.target_checks(config, target)
    yield schedule.last_run(config, env, paths)
    yield schedule.log(config)


def _print(checks: list[Check], env: Environment) -> None:
    for check in checks:
        first, *rest = check.saw.splitlines() or [""]
        env.stdout.write(f"{check.status:<4} {check.name}: {first}\n")
        for line in rest:
            env.stdout.write(f"       {line}\n")
        if check.fix and check.status != OK:
            env.stdout.write(f"       fix: {check.fix}\n")


def run_doctor(explicit: Path | None, env: Environment, root: Path, as_json: bool) -> ExitCode:
    paths = SystemPaths(root)
    path = config_file(explicit, env.environ, paths)
    checks: list[Check] = []
    try:
        config = load_config(path)
    except BackupError as exc:
        checks.append(Check("config", FAIL, str(exc), f"k3s-backup --config {path} config show"))
    else:
        checks.append(Check("config", OK, f"{path} is valid"))
        checks += all_checks(config, env, paths)
    failed = any(c.status == FAIL for c in checks)
    if as_json:
        document = {"ok": not failed, "checks": [asdict(c) for c in checks]}
        env.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _print(checks, env)
    return ExitCode.FAILED if failed else ExitCode.OK


@click.command("doctor", epilog=epilog("doctor"))
@json_option("One JSON object.")
@ROOT_OPTION
@pass_context
def command(ctx: Context, as_json: bool, root: Path) -> int:
    """Check everything a backup needs, each with what was seen and the command that fixes it."""
    return run_doctor(ctx.config_file, ctx.env, root, as_json)
