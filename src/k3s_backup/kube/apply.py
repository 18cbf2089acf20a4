"""Extracted manifests applied to the live cluster with `k3s kubectl`: never over an object that
exists live unless asked, never without a server-side dry run first, each outcome reported.

Arguments are lists (no shell); the manifests go on stdin."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode
from k3s_backup.kube import manifests
from k3s_backup.kube.manifests import Manifest
from k3s_backup.plumbing.commands import CommandError, run_command

TIMEOUT = 300
# etcd's resource names that kubectl spells otherwise.
_KUBECTL_RESOURCE = {"services/specs": "services", "minions": "nodes", "ingress": "ingresses"}
ConfigLoader = Callable[[], Config]
Runner = Callable[[list[str], str], subprocess.CompletedProcess[str]]


def kubectl_resource(resource: str) -> str:
    return _KUBECTL_RESOURCE.get(resource, resource)


def subprocess_runner(k3s_bin: str, environ: dict[str, str]) -> Runner:
    def run(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
        try:
            command = [k3s_bin, "kubectl", *args]
            return run_command(command, timeout=TIMEOUT, env=environ, input=stdin)
        except CommandError as exc:
            return subprocess.CompletedProcess(args, 127, "", f"{exc}\n")

    return run


def _describe(manifest: Manifest) -> str:
    where = f" in {manifest.namespace}" if manifest.namespace else ""
    return f"{manifest.resource} {manifest.name}{where}"


def existing(run: Runner, items: Sequence[Manifest]) -> tuple[list[Manifest], str | None]:
    """The manifests whose object exists live; or the error that kept us from knowing."""
    found: list[Manifest] = []
    for manifest in items:
        args = ["get", kubectl_resource(manifest.resource), manifest.name, "-o", "name"]
        args += ["--ignore-not-found"]
        if manifest.namespace:
            args += ["-n", manifest.namespace]
        result = run(args, "")
        if result.returncode != 0:
            return found, f"cannot tell whether {_describe(manifest)} exists: " + (
                result.stderr.strip() or f"kubectl exit {result.returncode}"
            )
        if result.stdout.strip():
            found.append(manifest)
    return found, None


def apply_manifests(
    items: list[Manifest],
    overwrite: bool,
    load_config: ConfigLoader,
    env: Environment,
    run: Runner | None = None,
) -> ExitCode:
    if run is None:
        run = subprocess_runner(load_config().k3s.bin, dict(env.environ))
    live, problem = existing(run, items)
    if problem:
        env.stderr.write(f"error: nothing applied: {problem}\n")
        return ExitCode.FAILED
    if live and not overwrite:
        for manifest in live:
            env.stderr.write(f"exists live: {_describe(manifest)}\n")
        env.stderr.write(
            f"error: nothing applied: {len(live)} of the objects exist live;"
            " --overwrite replaces them with the snapshot's\n"
        )
        return ExitCode.FAILED
    stream = manifests.yaml_stream(items)
    dry = run(["apply", "--dry-run=server", "-f", "-"], stream)
    if dry.returncode != 0:
        env.stderr.write(dry.stderr)
        env.stderr.write("error: nothing applied: the server-side dry run failed\n")
        return ExitCode.FAILED
    applied = run(["apply", "-f", "-"], stream)
    for line in applied.stdout.splitlines():
        env.stdout.write(f"applied  {line}\n")
    if applied.returncode != 0:
        env.stderr.write(applied.stderr)
        env.stderr.write("error: kubectl apply failed; the lines above say what it did apply\n")
        return ExitCode.FAILED
    return ExitCode.OK
