"""A stand-in for the `k3s` binary, honouring shared/notes/k3s-contract.md, backed by real etcd.

Run as `python -m k3s_backup.lab.fake_k3s --state STATEFILE <k3s args...>` (install_fake_k3s
writes a `k3s` wrapper doing that). The JSON state file says how to behave, so a test can flip
failure modes between runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

from k3s_backup.lab.etcd import (
    etcd_healthy,
    etcdctl_env,
)
from k3s_backup.lab.fake_k3s_server import ServerMixin
from k3s_backup.lab.fake_kubectl import KubectlMixin
from k3s_backup.lab.k3s_cli import (
    Fatal,
    Logger,
    Usage,
    go_error,
    parse_flags,
    rfc3339,
    trailing_time,
)

STATE_FILENAME = "fake-k3s.json"
VERSION_TEXT = "k3s version v1.33.4+k3s1 (abcdef12)\ngo version go1.24.5"
K3S_VERSION = "v1.33.4+k3s1"
CA_CERTS_ERROR = (
    'failed to get CA certs: Get "https://127.0.0.1:6443/cacerts": dial tcp 127.0.0.1:6443:'
    " connect: connection refused"
)
BUSY_ERROR = "see server log for details: Internal error occurred: etcd-snapshot error ID 40905"
SAVE_TIMEOUT = 300.0

Generation = Literal["current", "legacy"]
Failure = Literal["fatal", "silent", "corrupt", "busy"]


@dataclass
class FakeK3sState:
    etcd_endpoint: str
    data_dir: Path
    node_name: str = "k3s-05"
    generation: Generation = "current"
    failure: Failure | None = None
    compress_default: bool = False
    config_warning: bool = False  # print a harmless "Unknown flag" warning first
    delete_noop: bool = False  # `delete` logs "deleted" but leaves the file
    service_active: bool = True  # the k3s unit, as fake systemctl sees it
    reset_failure: bool = False  # `server --cluster-reset` fails after its checks
    version: str = K3S_VERSION  # what `k3s --version` and `kubectl get nodes` report
    config_yaml: Path | None = None  # None: <data_dir>/../etc/config.yaml
    token: str = ""  # the cluster token; also written to <data_dir>/server/token
    # How fake systemctl (re)starts the etcd behind this k3s.
    etcd_name: str = "default"
    etcd_client_port: int = 0
    etcd_peer_port: int = 0
    etcd_pid: int | None = None
    etcd_workdir: Path | None = None  # where its log goes
    clock_offset: int = 0  # seconds added to this node's clock (a clock that jumped)
    hold_at: str | None = None  # a point where the stand-in waits for the test (testbed.hold)
    hold_dir: Path | None = None

    @property
    def config_yaml_path(self) -> Path:
        return self.config_yaml or self.data_dir.parent / "etc" / "config.yaml"

    @property
    def default_snapshot_dir(self) -> Path:
        return self.data_dir / "server" / "db" / "snapshots"

    @property
    def etcd_data_dir(self) -> Path:
        return self.data_dir / "server" / "db" / "etcd"

    @property
    def etcd_peer_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_peer_port}"

    def save(self, path: Path) -> None:
        data = {k: str(v) if isinstance(v, Path) else v for k, v in self._fields().items()}
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def load(cls, path: Path) -> FakeK3sState:
        data: dict[str, Any] = json.loads(path.read_text())
        for key in ("data_dir", "config_yaml", "etcd_workdir", "hold_dir"):
            if data.get(key) is not None:
                data[key] = Path(data[key])
        return cls(**data)


def set_failure(statefile: Path, mode: Failure | None) -> None:
    if mode is not None and mode not in get_args(Failure):
        raise ValueError(f"unknown failure mode {mode!r}")
    state = FakeK3sState.load(statefile)
    state.failure = mode
    state.save(statefile)


def write_wrapper(path: Path, module: str, statefile: Path) -> Path:
    """An executable `#!/bin/sh` script running `python -m MODULE --state STATEFILE "$@"`."""
    command = " ".join(
        shlex.quote(part) for part in (sys.executable, "-m", module, "--state", str(statefile))
    )
    path.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    path.chmod(0o755)
    return path


def new_token() -> str:
    return f"K10{secrets.token_hex(32)}::server:{secrets.token_hex(16)}"


def install_fake_k3s(bin_dir: Path, state: FakeK3sState) -> Path:
    """Write `bin_dir/k3s` and its state next to it; create the token and the etcd markers."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    server = state.data_dir / "server"
    (server / "db" / "etcd" / "member" / "wal").mkdir(parents=True, exist_ok=True)
    token_file = server / "token"
    if not token_file.exists():
        token_file.write_text((state.token or new_token()) + "\n")
    token_file.chmod(0o600)
    state.token = token_file.read_text().strip()
    statefile = bin_dir / STATE_FILENAME
    state.save(statefile)
    return write_wrapper(bin_dir / "k3s", "k3s_backup.lab.fake_k3s", statefile)


# ---- the command line -------------------------------------------------------------------


class FakeK3s(KubectlMixin, ServerMixin):
    def __init__(
        self,
        state: FakeK3sState,
        stdout: TextIO,
        stderr: TextIO,
        stdin: TextIO | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.state = state
        self.stdout = stdout
        self.stdin = stdin
        self.state_dir = state_dir
        self.log = Logger(stderr)

    def run(self, args: list[str]) -> int:
        try:
            return self._dispatch(args)
        except Usage as exc:
            self.log.raw(f"Incorrect Usage: {exc}")
            return 1
        except Fatal as exc:
            self.log.log("fatal", f"Error: {exc}")
            return 1

    def _dispatch(self, args: list[str]) -> int:
        if args[:1] in (["--version"], ["-v"]):
            self.stdout.write(VERSION_TEXT.replace(K3S_VERSION, self.state.version) + "\n")
            return 0
        command, rest = (args[0], args[1:]) if args else ("", [])
        if command == "kubectl":
            return self.kubectl(rest)
        if command not in ("etcd-snapshot", "server"):
            raise Usage(f"fake k3s does not implement {command!r}")
        if self.state.config_warning:
            self.log.log("warning", "Unknown flag --foo found in config.yaml, skipping")
        words, flags = parse_flags(rest)
        if command == "server":
            return self.server(words, flags)
        return self.etcd_snapshot(words, flags)

    def etcd_snapshot(self, words: list[str], flags: dict[str, str]) -> int:
        sub, names = (words[0], words[1:]) if words else ("save", [])
        if sub == "save" and not names:
            return self.save(flags)
        if sub in ("delete", "rm"):
            return self.delete(names, flags)
        if sub in ("ls", "list", "l") and not names:
            return self.ls(flags)
        if sub == "prune" and not names:
            return self.prune(flags)
        raise Usage(f"unexpected arguments: {' '.join(words)}")

    # ---- shared checks -------------------------------------------------------------------

    def _data_dir(self, flags: dict[str, str]) -> Path:
        return Path(flags["data-dir"]) if "data-dir" in flags else self.state.data_dir

    def _connect(self, flags: dict[str, str]) -> None:
        """What the CLI needs before it can talk to the server: the token and a live server."""
        token = self._data_dir(flags) / "server" / "token"
        try:
            token.read_text()
        except OSError as exc:
            raise Fatal(go_error(exc, "open", token)) from None
        if self.state.failure == "fatal" or not self.state.service_active:
            raise Fatal(CA_CERTS_ERROR)

    def _snapshot_dir(self, flags: dict[str, str], create: bool) -> Path:
        default = self._data_dir(flags) / "server" / "db" / "snapshots"
        directory = Path(flags.get("dir", str(default)))
        if directory == default and create:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif not directory.is_dir():
            raise Fatal(f"failed to get etcd-snapshot-dir: stat {directory}: no such directory")
        return directory

    # ---- etcd-snapshot save ----------------------------------------------------------------

    def save(self, flags: dict[str, str]) -> int:
        self._connect(flags)
        if self.state.failure == "busy":
            raise Fatal(BUSY_ERROR)
        directory = self._snapshot_dir(flags, create=True)
        unix = int(time.time()) + self.state.clock_offset
        name = f"{flags.get('name', 'on-demand')}-{self.state.node_name}-{unix}"
        if self.state.failure == "silent":
            return 0  # the server only logged a broken etcd stream
        path = directory / name
        if self.state.generation == "legacy":
            self.log.log("info", f"Saving etcd snapshot to {path}")
        self._etcd_save(path)
        if self.state.failure == "corrupt":
            self._flip_middle_byte(path)
        compress = flags.get("compress", str(self.state.compress_default).lower()) == "true"
        final = self._compress(path) if compress else path
        if self.state.generation == "current":
            self.log.log("info", f"Snapshot {final.name} saved.")
        return 0

    def _etcd_save(self, path: Path) -> None:
        """etcdctl writes `<path>.part.part` and renames it; K3s then renames `.part` away."""
        part = path.with_name(path.name + ".part")
        endpoint = self.state.etcd_endpoint
        # etcdctl 3.4's `snapshot save` hangs forever on a dead endpoint: ask first.
        if not etcd_healthy(endpoint, timeout=2.0, answer_timeout=20.0):
            raise Fatal(f"see server log for details: etcd at {endpoint} is not reachable")
        command = ["etcdctl", f"--endpoints={endpoint}", "snapshot", "save", str(part)]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=etcdctl_env(),
                check=False,
                stdin=subprocess.DEVNULL,
                timeout=SAVE_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            result = subprocess.CompletedProcess([], 1, "", "etcd snapshot stream timed out")
        if self.state.generation == "legacy":
            for line in result.stderr.splitlines():
                if line.startswith("{"):
                    self.log.raw(line)  # the etcd client's JSON log lines
        if result.returncode != 0:
            for leftover in (part, part.with_name(part.name + ".part")):
                leftover.unlink(missing_ok=True)
            error = (result.stderr.strip().splitlines() or ["etcd unreachable"])[-1]
            raise Fatal(f"see server log for details: failed to save snapshot: {error}")
        part.replace(path)
        path.chmod(0o600)

    @staticmethod
    def _flip_middle_byte(path: Path) -> None:
        with path.open("r+b") as stream:
            stream.seek(path.stat().st_size // 2)
            byte = stream.read(1)
            stream.seek(-1, os.SEEK_CUR)
            stream.write(bytes([byte[0] ^ 0xFF]))

    def _compress(self, path: Path) -> Path:
        archive = path.with_name(path.name + ".zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(path, arcname=path.name)
        path.unlink()
        archive.chmod(0o644 if self.state.generation == "legacy" else 0o600)
        return archive

    # ---- etcd-snapshot delete / ls / prune --------------------------------------------------

    def delete(self, names: list[str], flags: dict[str, str]) -> int:
        self._connect(flags)
        if not names:
            raise Fatal("no snapshots given for removal")
        directory = self._snapshot_dir(flags, create=False)
        for name in names:
            path = directory / name
            if "/" in name or not path.is_file():
                self.log.log("warning", f"Snapshot {name} not found.")
                continue
            if not self.state.delete_noop:
                path.unlink()
            self.log.log("info", f"Snapshot {name} deleted.")
        return 0

    def _snapshots(self, directory: Path) -> list[Path]:
        """Every file under the snapshot dir, oldest first: K3s takes them all as snapshots."""
        files = [Path(root) / f for root, _, names in os.walk(directory) for f in names]
        return sorted(files, key=lambda p: (trailing_time(p), p.name))

    def ls(self, flags: dict[str, str]) -> int:
        self._connect(flags)
        files = self._snapshots(self._snapshot_dir(flags, create=True))
        output = flags.get("output", "table")
        if output == "json":
            render = self._json_current if self.state.generation == "current" else self._json_legacy
            self.stdout.write(json.dumps(render(files), indent=4) + "\n")
        elif output == "table":
            self.stdout.write(self._table(files))
        else:
            raise Fatal(f"unsupported output format {output!r} in this fake")
        return 0

    @staticmethod
    def _table(files: list[Path]) -> str:
        rows = [["Name", "Location", "Size", "Created"]]
        for path in files:
            created = rfc3339(trailing_time(path))
            rows.append([path.name, f"file://{path}", str(path.stat().st_size), created])
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [" ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) for r in rows]
        return "".join(f"{line} {row[3]}\n" for line, row in zip(lines, rows, strict=True))

    def _json_current(self, files: list[Path]) -> dict[str, Any]:
        items = [
            {
                "apiVersion": "k3s.cattle.io/v1",
                "kind": "ETCDSnapshotFile",
                "metadata": {"name": f"local-{p.name}".lower().replace("_", "-")},
                "spec": {
                    "snapshotName": p.name,
                    "nodeName": self.state.node_name,
                    "location": f"file://{p}",
                },
                "status": {
                    "size": str(p.stat().st_size),
                    "creationTime": rfc3339(trailing_time(p)),
                    "readyToUse": True,
                },
            }
            for p in files
        ]
        return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}

    def _json_legacy(self, files: list[Path]) -> dict[str, Any]:
        return {
            f"local-{p.name}": {
                "name": p.name,
                "location": f"file://{p}",
                "nodeName": self.state.node_name,
                "createdAt": rfc3339(trailing_time(p)),
                "size": p.stat().st_size,
                "status": "successful",
                "compressed": p.name.endswith(".zip"),
            }
            for p in files
        }

    def prune(self, flags: dict[str, str]) -> int:
        self._connect(flags)
        try:
            keep = int(flags.get("retention", "5"))
        except ValueError:
            raise Usage("invalid value for -snapshot-retention") from None
        prefix = flags.get("name", "on-demand")  # a plain string prefix: no "-", no node filter
        directory = self._snapshot_dir(flags, create=True)
        matching = [p for p in self._snapshots(directory) if p.name.startswith(prefix)]
        doomed = matching[: max(len(matching) - keep, 0)] if keep >= 1 else []
        for path in doomed:
            self.log.log("info", f"Removing local snapshot {path}")
            path.unlink()
        return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "--state":
        sys.stderr.write("usage: python -m k3s_backup.lab.fake_k3s --state FILE ARGS...\n")
        return 2
    state = FakeK3sState.load(Path(args[1]))
    return FakeK3s(state, sys.stdout, sys.stderr, sys.stdin, Path(args[1]).parent).run(args[2:])


if __name__ == "__main__":
    sys.exit(main())
