"""Setup's options and the configuration they make: the existing file's values, replaced by
what was given, a new SSH target's defaults filled in: pure, but for the host asked."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k3s_backup.config import PLACEHOLDER_HOST
from k3s_backup.errors import ExitCode
from k3s_backup.policy.schedule import DEFAULT_SCHEDULE
from k3s_backup.scheduling import SystemPaths

STEPS = 6
SERVICE_USER = "k3s-backup"  # host-setup's account on the backup host
DEFAULTS: dict[str, Any] = {
    "user": "root",
    "port": 22,
    "path": "/var/backups/k3s-etcd",
    "keep": 7,
    "connect_timeout": 15,
}


@dataclass
class SetupOptions:
    config_file: Path | None
    host: str | None
    user: str | None
    port: int | None
    remote_path: str | None
    identity_file: Path | None
    cluster_name: str | None
    keep_local: int | None
    keep_remote: int | None
    schedule: str | None
    scheduler: str | None
    drill_schedule: str | None  # cron syntax, or "off"
    accept_host_key: str | None
    yes: bool
    dry_run: bool
    root: Path
    new_cluster: bool = False  # --new-cluster: back up even beside another cluster's copies
    recovery_key: str | None = None  # --recovery-key FILE|-: the cluster's, from elsewhere
    mode: str | None = None  # --mode: append-only (new set-ups), prune or sftp


class SetupStop(Exception):
    """Setup cannot go on; the message says why and what to do."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.code = code


def configured_host(target: dict[str, Any]) -> str | None:
    """The target's host, unless it is the template's placeholder (or absent)."""
    host = target.get("host")
    return host if isinstance(host, str) and host and host != PLACEHOLDER_HOST else None


def target_mode(options: SetupOptions, old: dict[str, Any]) -> str:
    """--mode, else the target's own; a target set up before modes existed (no key) keeps the
    guide's SFTP (doctor warns), a new one gets the append-only service."""
    if options.mode is not None:
        return options.mode
    configured = bool(configured_host(old))  # the template's placeholder is no set-up
    return str(old.get("mode", "sftp" if configured else "append-only"))


def desired(
    options: SetupOptions,
    paths: SystemPaths,
    existing: dict[str, Any],
    ask_host: Callable[[], str],
) -> dict[str, Any]:
    """The configuration to write: existing values, replaced by what was given."""
    o = options
    data = dict(existing)
    targets = [dict(t) for t in data.get("targets", [])]
    index = next((i for i, t in enumerate(targets) if t.get("type") == "ssh"), None)
    old = targets[index] if index is not None else {}
    host = o.host or configured_host(old) or ask_host()
    mode = target_mode(o, old)
    target = {
        "name": old.get("name") or re.sub(r"[^A-Za-z0-9._-]", "-", host),
        "type": "ssh",
        "host": host,
        "user": o.user or old.get("user", DEFAULTS["user"] if mode == "sftp" else SERVICE_USER),
        "port": o.port or old.get("port", DEFAULTS["port"]),
        "path": o.remote_path or old.get("path", DEFAULTS["path"]),
        "identity_file": str(
            o.identity_file or old.get("identity_file") or paths.ssh_dir / "id_ed25519"
        ),
        "known_hosts": old.get("known_hosts") or str(paths.ssh_dir / "known_hosts"),
        "connect_timeout": old.get("connect_timeout", DEFAULTS["connect_timeout"]),
        "keep": o.keep_remote or old.get("keep", DEFAULTS["keep"]),
    }
    if mode != "sftp" or o.mode:  # the opt-out, when chosen, said outright
        target["mode"] = mode
    target.update({k: v for k, v in old.items() if k not in target})
    if index is None:
        targets.append(target)
    else:
        targets[index] = target
    for key, given in (
        ("cluster_name", o.cluster_name),
        ("keep_local", o.keep_local),
        ("schedule", o.schedule),
        ("scheduler", o.scheduler),
        ("drill_schedule", o.drill_schedule),
    ):
        if given is not None:
            data[key] = given
    if data.get("drill_schedule") == "off":
        del data["drill_schedule"]
    data.setdefault("schedule", DEFAULT_SCHEDULE)
    data.setdefault("scheduler", "cron")
    if not paths.is_system_root:  # our own files land under the root too
        data.setdefault("log_file", str(paths.under("/var/log/k3s-backup.log")))
        data.setdefault("state_dir", str(paths.under("/var/lib/k3s-backup")))
    data["targets"] = targets
    return data


def rerun_command(options: SetupOptions, paths: SystemPaths, host_fingerprint: str) -> str:
    """This setup again, with the host key accepted: what to run once it is checked."""
    o = options
    words = ["k3s-backup"]
    if o.config_file is not None:
        words += ["--config", str(o.config_file)]
    words.append("setup")
    for flag, value in (
        ("--host", o.host),
        ("--user", o.user),
        ("--port", o.port),
        ("--path", o.remote_path),
        ("--identity-file", o.identity_file),
        ("--cluster-name", o.cluster_name),
        ("--keep-local", o.keep_local),
        ("--keep-remote", o.keep_remote),
        ("--schedule", o.schedule),
        ("--scheduler", o.scheduler),
    ):
        if value is not None:
            words += [flag, str(value)]
    if not paths.is_system_root:
        words += ["--root", str(o.root)]
    return shlex.join([*words, "--accept-host-key", host_fingerprint])
