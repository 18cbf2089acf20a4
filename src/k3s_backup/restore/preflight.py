"""The checks a restore runs before it stops anything: the commonest reasons a K3s restore fails
are not the snapshot (see shared/notes/k3s-contract.md, "Restore").

Each check is a small function returning a Problem (or None): its exact message, whether
`--force` may override it, and whether restore can fix it itself (the token). What `--force`
overrides is only what cannot make things worse: an unverifiable token or version (no bundle,
or `k3s --version` silent) and a leftover reset flag (the reset rewrites it and the next start
clears it). A differing token, a `server:` line, too little disk and an older K3s always refuse.
"""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from k3s_backup.catalogue.bundle import (
    CONFIG,
    CONFIG_D,
    Bundle,
    token_path,
    version_key,
)
from k3s_backup.config import Config
from k3s_backup.report import Reporter, human_size

DISK_MARGIN = 64 << 20  # etcd needs room beyond the database itself to start and compact
_SERVER_LINE = re.compile(r"^(server|\"server\"|'server')\s*:")


@dataclass(frozen=True)
class Problem:
    check: str
    message: str
    overridable: bool = False  # --force may go on despite it
    token_fix: bool = False  # putting the bundle's token in place fixes it


def missing_bundle(snapshot: str) -> Problem:
    return Problem(
        "bundle",
        f"no restore bundle found for {snapshot} on any location: the server token and K3s"
        " version cannot be checked (snapshots made before bundles existed have none);"
        " --force goes on with this node's own token",
        overridable=True,
    )


def token_problem(data_dir: Path, bundle: Bundle | None) -> Problem | None:
    """The node's token must be the one the snapshot's bootstrap data is encrypted with."""
    path = token_path(data_dir)
    try:
        current = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        current = ""
    except OSError as exc:
        return Problem("token", f"cannot read the server token {path}: {exc.strerror}")
    if bundle is None:
        if current:
            return None
        return Problem(
            "token",
            f"no server token at {path} and no restore bundle holds one: K3s cannot decrypt"
            " the snapshot's bootstrap data without the original cluster's token; put it in"
            f" {path} (mode 0600), then rerun",
        )
    if current == bundle.token:
        return None
    if not current:
        state = "is missing: K3s cannot decrypt the snapshot's bootstrap data without it"
    else:
        state = (
            "differs from the one saved with the snapshot: K3s would refuse it (bootstrap data"
            " encrypted with a different token)"
        )
    return Problem("token", f"the server token {path} {state}", token_fix=True)


_NODE_NAME_LINE = re.compile(r"""^node-name:\s*["']?(?P<name>[A-Za-z0-9._-]+)["']?\s*(#.*)?$""")


def _config_files(config_dir: Path) -> list[Path]:
    files = [config_dir / CONFIG]
    drop_ins = config_dir / CONFIG_D
    if drop_ins.is_dir():
        files += sorted(p for p in drop_ins.iterdir() if p.suffix in (".yaml", ".yml"))
    return [f for f in files if f.is_file()]


def k3s_node_name(config_dir: Path, configured: str) -> str:
    """This node's name in Kubernetes: `node_name` in our config, else K3s's `node-name`
    setting (config.yaml, then its drop-ins, the last one winning as in K3s), else the host
    name K3s defaults to."""
    if configured:
        return configured
    found = ""
    for path in _config_files(config_dir):
        for line in path.read_text(errors="replace").splitlines():
            if match := _NODE_NAME_LINE.match(line):
                found = match["name"]
    return found or socket.gethostname().lower()


def server_line_problem(config_dir: Path) -> Problem | None:
    """`server:` makes this node join another instead of becoming the first server again."""
    for path in _config_files(config_dir):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if _SERVER_LINE.match(line):
                return Problem(
                    "server-line",
                    f"{path} line {number} has `{line.strip()}`: K3s refuses --cluster-reset"
                    " while this node is told to join another server; comment that line out"
                    " (the restored node becomes the first server), then rerun",
                )
    return None


def reset_flag_problem(data_dir: Path) -> Problem | None:
    flag = data_dir / "server" / "db" / "reset-flag"
    if not flag.exists():
        return None
    return Problem(
        "reset-flag",
        f"{flag} is left from an earlier --cluster-reset that K3s never started after: check"
        " why (`journalctl -u k3s`); `systemctl start k3s` clears it, or --force goes on (this"
        " restore writes it again and its start clears it)",
        overridable=True,
    )


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def required_space(snapshot_size: int) -> int:
    """The restored database is about the snapshot's size; the old one is moved, not copied."""
    return snapshot_size + snapshot_size // 10 + DISK_MARGIN


def disk_problem(data_dir: Path, needed: int) -> Problem | None:
    where = _existing_ancestor(data_dir / "server" / "db")
    free = shutil.disk_usage(where).free
    if free >= needed:
        return None
    return Problem(
        "disk",
        f"not enough free space for the restore in {where}: {human_size(free)} free,"
        f" {human_size(needed)} needed; free some space there, then rerun",
    )


def version_problem(current: str | None, bundle: Bundle | None) -> Problem | None:
    """A snapshot from a newer K3s may hold objects an older one cannot read: never downgrade."""
    if bundle is None or bundle.k3s_version is None:
        return None  # nothing to compare with; the missing bundle is its own problem
    wanted, have = version_key(bundle.k3s_version), version_key(current or "")
    if have is None or wanted is None:
        return Problem(
            "version",
            f"cannot tell whether this node's K3s ({current or 'unknown: `k3s --version` failed'})"
            f" is at least the snapshot's {bundle.k3s_version}; --force goes on",
            overridable=True,
        )
    if have >= wanted:
        return None
    return Problem(
        "version",
        f"this node runs K3s {current}, older than the {bundle.k3s_version} that made the"
        f" snapshot: a downgrade can leave objects K3s cannot read; install {bundle.k3s_version}"
        " or newer (INSTALL_K3S_VERSION=... on the install script), then rerun",
    )


def problems(
    config: Config, snapshot: str, size: int, bundle: Bundle | None, current_version: str | None
) -> list[Problem]:
    """Every check's problem for restoring `snapshot` (`size` bytes, plain) on this node, whose
    `k3s --version` said `current_version` (bundle.k3s_version)."""
    data_dir = config.k3s.data_dir
    found = [
        missing_bundle(snapshot) if bundle is None else None,
        token_problem(data_dir, bundle),
        server_line_problem(config.k3s.config_dir),
        reset_flag_problem(data_dir),
        disk_problem(data_dir, required_space(size)),
        version_problem(current_version, bundle),
    ]
    return [problem for problem in found if problem is not None]


def settle(
    found: list[Problem], force: bool, agree: Callable[[Problem], bool], report: Reporter
) -> bool | None:
    """Whether to put the bundle's token in place (`agree` asks); None if the pre-flight
    refuses: each refusal is reported with its fix."""
    put_token = False
    refusals = []
    for problem in found:
        if problem.token_fix:
            put_token = agree(problem)
            if not put_token:
                refusals.append(problem.message + "; answer yes (or pass --yes) to put it in place")
        elif problem.overridable and force:
            report.warn(f"pre-flight: {problem.message} (overridden by --force)")
        else:
            hint = " (--force overrides this one)" if problem.overridable else ""
            refusals.append(problem.message + hint)
    for message in refusals:
        report.error(f"pre-flight: {message}")
    if refusals:
        report.error("restore refused by the pre-flight checks; nothing was stopped or changed")
        return None
    return put_token
