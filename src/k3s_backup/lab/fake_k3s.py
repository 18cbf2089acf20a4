"""A stand-in for the `k3s` binary, honouring shared/notes/k3s-contract.md, backed by real etcd.

Run as `python -m k3s_backup.lab.fake_k3s --state STATEFILE <k3s args...>` (install_fake_k3s
writes a `k3s` wrapper doing that). The JSON state file says how to behave, so a test can flip
failure modes between runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TextIO, get_args

from k3s_backup.lab.etcd import (
    EtcdError,
    etcd_healthy,
    etcdctl,
    etcdctl_env,
    plain_snapshot,
    restore_snapshot,
)
from k3s_backup.lab.hold import hold_here
from k3s_backup.plumbing.loopback import pid_runs

STATE_FILENAME = "fake-k3s.json"
APPLIED_FILENAME = "kubectl-applied.jsonl"  # beside the state: each `kubectl apply` given
VERSION_TEXT = "k3s version v1.33.4+k3s1 (abcdef12)\ngo version go1.24.5"
K3S_VERSION = "v1.33.4+k3s1"
CA_CERTS_ERROR = (
    'failed to get CA certs: Get "https://127.0.0.1:6443/cacerts": dial tcp 127.0.0.1:6443:'
    " connect: connection refused"
)
BUSY_ERROR = "see server log for details: Internal error occurred: etcd-snapshot error ID 40905"
RESET_MESSAGE = (
    "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now."
    " Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes"
)
TRAILER = 32
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


class Fatal(Exception):
    """Ends the command with `level=fatal msg="Error: ..."` and exit 1."""


class Usage(Exception):
    """A command line urfave/cli would reject."""


_VALUE_FLAGS = {
    "name": "name",
    "dir": "dir",
    "etcd-snapshot-dir": "dir",
    "data-dir": "data-dir",
    "d": "data-dir",
    "snapshot-retention": "retention",
    "etcd-snapshot-retention": "retention",
    "o": "output",
    "output": "output",
    "node-name": "node-name",
    "token": "token",
    "t": "token",
    "server": "server",
    "s": "server",
    "config": "config",
    "c": "config",
    "log": "log",
    "l": "log",
    "cluster-reset-restore-path": "restore-path",
}
_BOOL_FLAGS = {
    "etcd-snapshot-compress": "compress",
    "snapshot-compress": "compress",
    "cluster-reset": "cluster-reset",
    "debug": "debug",
    "alsologtostderr": "alsologtostderr",
    "etcd-s3": "s3",
    "s3": "s3",
    "etcd-s3-insecure": "s3",
    "etcd-s3-skip-ssl-verify": "s3",
}


def _flag_kind(name: str) -> tuple[str, bool] | None:
    """(canonical name, takes a value) of a known flag; K3s's own S3 options are ignored."""
    if name in _BOOL_FLAGS:
        return _BOOL_FLAGS[name], False
    if name in _VALUE_FLAGS:
        return _VALUE_FLAGS[name], True
    if name.startswith(("etcd-s3-", "s3-")):
        return "s3-" + name, True
    return None


def parse_flags(tokens: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional words and flags, `--flag value`, `--flag=value` and `-flag` forms alike."""
    words: list[str] = []
    flags: dict[str, str] = {}
    rest = iter(tokens)
    for token in rest:
        if token == "--":
            words.extend(rest)
            break
        if not token.startswith("-") or token == "-":
            words.append(token)
            continue
        name, has_value, value = token.lstrip("-").partition("=")
        kind = _flag_kind(name)
        if kind is None:
            raise Usage(f"flag provided but not defined: -{name}")
        canonical, takes_value = kind
        if takes_value and not has_value:
            following = next(rest, None)
            if following is None:
                raise Usage(f"flag needs an argument: -{name}")
            value = following
        flags[canonical] = value if (takes_value or has_value) else "true"
    return words, flags


class Logger:
    """logrus on stderr: text format when piped, `INFO[0000]` style on a terminal."""

    _SHORT: ClassVar[dict[str, str]] = {
        "info": "INFO",
        "warning": "WARN",
        "error": "ERRO",
        "fatal": "FATA",
    }

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()

    def log(self, level: str, msg: str) -> None:
        if self.tty:
            elapsed = int(time.monotonic() - self.started)
            line = f"{self._SHORT[level]}[{elapsed:04d}] {msg}"
        else:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            line = f'time="{now}" level={level} msg={json.dumps(msg, ensure_ascii=False)}'
        self.stream.write(line + "\n")
        self.stream.flush()

    def raw(self, text: str) -> None:
        self.stream.write(text if text.endswith("\n") or not text else text + "\n")
        self.stream.flush()


def has_trailer(path: Path) -> bool:
    """etcd's restore check: size 512*n+32 and SHA-256 of the database = the last 32 bytes."""
    size = path.stat().st_size
    if size % 512 != TRAILER:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        remaining = size - TRAILER
        while remaining:
            chunk = stream.read(min(1 << 20, remaining))
            digest.update(chunk)
            remaining -= len(chunk)
        return digest.digest() == stream.read(TRAILER)


def _trailing_time(path: Path) -> int:
    stem = path.name.removesuffix(".zip")
    last = stem.rsplit("-", 1)[-1]
    return int(last) if last.isdigit() else int(path.stat().st_mtime)


def _rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _go_error(exc: OSError, verb: str, path: Path) -> str:
    reason = (exc.strerror or str(exc)).lower()
    return f"{verb} {path}: {reason}"


class FakeK3s:
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
            raise Fatal(_go_error(exc, "open", token)) from None
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
        return sorted(files, key=lambda p: (_trailing_time(p), p.name))

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
            created = _rfc3339(_trailing_time(path))
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
                    "creationTime": _rfc3339(_trailing_time(p)),
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
                "createdAt": _rfc3339(_trailing_time(p)),
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

    # ---- kubectl get nodes, get RESOURCE NAME, apply -f - -------------------------------

    def kubectl(self, args: list[str]) -> int:
        if not self.state.service_active or not etcd_healthy(self.state.etcd_endpoint):
            self.log.raw(
                "The connection to the server 127.0.0.1:6443 was refused"
                " - did you specify the right host or port?"
            )
            return 1
        if args[:1] == ["apply"]:
            return self._kubectl_apply(args[1:])
        if args[:2] not in (["get", "nodes"], ["get", "node"], ["get", "no"]):
            if args[:1] == ["get"] and len(args) >= 3:
                return self._kubectl_get_one(args[1:])
            self.log.raw(
                "error: the fake k3s kubectl only knows `get nodes`, `get RESOURCE NAME` and"
                " `apply -f -`"
            )
            return 1
        # This node is Ready; the other nodes the datastore lists (a restored snapshot's lost
        # servers among them) have no kubelet here: NotReady, as in K3s.
        node = self.state.node_name
        others = sorted(set(self._registered_nodes()) - {node})
        width = max([len(n) for n in [node, *others]] + [4]) + 3
        rows = [f"{node:<{width}}Ready    control-plane,etcd,master   42d   {self.state.version}"]
        rows += [
            f"{other:<{width}}NotReady control-plane,etcd,master   42d   {self.state.version}"
            for other in others
        ]
        header = f"{'NAME':<{width}}STATUS   ROLES                       AGE   VERSION"
        self.stdout.write("\n".join([header, *rows]) + "\n")
        return 0

    def _exists(self, key: str) -> bytes | None:
        try:
            reply = etcdctl(["get", "--print-value-only", "--", key], self.state.etcd_endpoint)
        except EtcdError:
            return None
        return reply or None

    def _kubectl_get_one(self, args: list[str]) -> int:
        """`get RESOURCE NAME [-n NS] [-o name] [--ignore-not-found]`, read from etcd."""
        words, flags = _kubectl_flags(args)
        resource, name = words[0], words[1]
        namespace = flags.get("n") or flags.get("namespace")
        value = self._exists(_etcd_key(resource, namespace, name))
        if value is None:
            if "ignore-not-found" in flags:
                return 0
            self.log.raw(f'Error from server (NotFound): {resource} "{name}" not found')
            return 1
        from k3s_backup.formats.kubernetes import decode_value

        stored = decode_value(value)
        group = (stored.api_version or "").rpartition("/")[0]
        kind = (stored.kind or resource).lower() + (f".{group}" if group else "")
        self.stdout.write(f"{kind}/{name}\n")
        return 0

    def _kubectl_apply(self, args: list[str]) -> int:
        """`apply [--dry-run=server] -f -`: records what it was given beside the state file and
        answers as kubectl does, one line per object; the objects are not written to etcd."""
        _words, flags = _kubectl_flags(args)
        if flags.get("f") != "-" or self.stdin is None:
            self.log.raw("error: the fake k3s kubectl applies only -f - (stdin)")
            return 1
        text = self.stdin.read()
        if self.state_dir is not None:
            with (self.state_dir / APPLIED_FILENAME).open("a") as record:
                record.write(json.dumps({"args": args, "stdin": text}) + "\n")
        import yaml

        suffix = " (server dry run)" if flags.get("dry-run") == "server" else ""
        for document in yaml.safe_load_all(text):
            if not isinstance(document, dict) or not document.get("metadata", {}).get("name"):
                self.log.raw("error: error validating data: metadata.name is missing")
                return 1
            kind, api_version = str(document.get("kind", "")), str(document["apiVersion"])
            meta = document["metadata"]
            group = api_version.rpartition("/")[0]
            resource = _plural(kind) + (f".{group}" if group else "")
            exists = self._exists(_etcd_key(resource, meta.get("namespace"), meta["name"]))
            verb = "configured" if exists else "created"
            shown = kind.lower() + (f".{group}" if group else "")
            self.stdout.write(f"{shown}/{meta['name']} {verb}{suffix}\n")
        return 0

    def _registered_nodes(self) -> list[str]:
        """The Node objects in etcd: the keys under /registry/minions/."""
        try:
            keys = etcdctl(
                ["get", "--prefix", "--keys-only", NODES_PREFIX], self.state.etcd_endpoint
            ).decode()
        except EtcdError:
            return []
        return [k[len(NODES_PREFIX) :] for k in keys.split() if k.startswith(NODES_PREFIX)]

    # ---- server --cluster-reset ----------------------------------------------------------

    def server(self, words: list[str], flags: dict[str, str]) -> int:
        if words or flags.get("cluster-reset") != "true":
            raise Fatal("the fake k3s server only implements --cluster-reset")
        data_dir = self._data_dir(flags)
        self._check_config(data_dir)
        with _restore_source(flags.get("restore-path")) as snapshot:
            self._check_token(data_dir, flags, snapshot)
            self._check_stopped()
            if self.state.reset_failure:
                raise Fatal(
                    "starting kubernetes: preparing server: simulated cluster-reset failure"
                )
            if snapshot is not None:
                self._restore(data_dir, snapshot)
        (data_dir / "server" / "db" / "reset-flag").touch()
        if self.state.generation == "current":
            self.log.log("error", f'Shutdown request received: "{RESET_MESSAGE}"')
        else:
            self.log.log("info", RESET_MESSAGE)
        return 0

    def _check_config(self, data_dir: Path) -> None:
        config = self.state.config_yaml_path
        if config.exists() and any(
            line.lstrip().startswith("server:") for line in config.read_text().splitlines()
        ):
            raise Fatal("invalid flag use; --server is not compatible with --cluster-reset")

    def _check_stopped(self) -> None:
        pid = self.state.etcd_pid
        if self.state.service_active or (pid is not None and pid_runs(pid, "etcd")):
            raise Fatal("etcd already running")

    def _check_token(self, data_dir: Path, flags: dict[str, str], snapshot: Path | None) -> None:
        """K3s decrypts the bootstrap data with the token: the snapshot's own (its
        `/bootstrap/<token hash>` key) when it has one, else this install's."""
        token_file = data_dir / "server" / "token"
        token = flags.get("token") or (
            token_file.read_text().strip() if token_file.exists() else ""
        )
        if not token:
            raise Fatal(f"no token found in {token_file} and no --token given")
        bootstrap = _bootstrap_keys(snapshot) if snapshot is not None else set()
        if bootstrap:
            matches = bootstrap_key(token) in bootstrap
        else:
            matches = not self.state.token or _secret(token) == _secret(self.state.token)
        if not matches:
            raise Fatal("bootstrap data already found and encrypted with different token")

    def _restore(self, data_dir: Path, snapshot: Path) -> None:
        db = data_dir / "server" / "db"
        old = db / f"etcd-old-{int(time.time())}"
        (db / "etcd").rename(old)
        self.log.log("info", f"Pre-restore etcd database moved to {old}")
        hold_here(self.state.hold_at, self.state.hold_dir, "cluster-reset")  # mid-write
        try:
            restore_snapshot(snapshot, db / "etcd", self.state.etcd_name, self.state.etcd_peer_url)
        except EtcdError as exc:
            raise Fatal(f"failed to restore snapshot: {exc}") from None


NODES_PREFIX = "/registry/minions/"
BOOTSTRAP_PREFIX = "/bootstrap/"


def _kubectl_flags(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """kubectl's `-n NS`, `--namespace=NS`, `-o name`, `-f -`, `--flag` (value "true")."""
    words: list[str] = []
    flags: dict[str, str] = {}
    rest = iter(args)
    for arg in rest:
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            flags[name] = value if has_value else "true"
        elif arg.startswith("-") and len(arg) == 2:
            flags[arg[1:]] = next(rest, "")
        else:
            words.append(arg)
    return words, flags


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith(("s", "x")) else "s")


# Resources etcd keeps under another name than kubectl's.
_ETCD_RESOURCE = {"services": "services/specs", "nodes": "minions", "ingresses": "ingress"}


def _etcd_key(resource: str, namespace: str | None, name: str) -> str:
    """Where the API server keeps RESOURCE[.group] NAME: `/registry/[<group>/]<resource>/...`;
    built-in groups (`apps`, `*.k8s.io`) are not in the key, others are."""
    plural, _dot, group = resource.partition(".")
    plural = _ETCD_RESOURCE.get(plural, plural)
    path = f"{group}/{plural}" if "." in group and not group.endswith("k8s.io") else plural
    if group == "apiextensions.k8s.io" or group == "apiregistration.k8s.io":
        path = f"{group}/{plural}"
    return f"/registry/{path}/" + (f"{namespace}/" if namespace else "") + name


def bootstrap_key(token: str) -> str:
    """Where K3s keeps the bootstrap data encrypted with `token`: a hash of its password."""
    return BOOTSTRAP_PREFIX + hashlib.sha256(_secret(token).encode()).hexdigest()[:12]


def _bootstrap_keys(snapshot: Path) -> set[str]:
    from k3s_backup.formats.etcd_db import EtcdDb

    with EtcdDb(snapshot) as db:
        keys = db.live(BOOTSTRAP_PREFIX.encode()).keys
    return {key.decode(errors="replace") for key in keys}


def _secret(token: str) -> str:
    """The password part of a `K10<ca hash>::server:<password>` token, or the token itself."""
    return token.rpartition("::server:")[2] if "::server:" in token else token


@contextmanager
def _restore_source(restore: str | None) -> Iterator[Path | None]:
    """The plain snapshot to restore (unzipped if needed) once it passed K3s's checks."""
    if restore is None:
        yield None
        return
    path = Path(restore)
    if not path.is_absolute():
        raise Fatal(f"cluster-reset-restore-path {path} must be absolute (the server chdirs)")
    if not path.is_file():
        raise Fatal(f"stat {path}: no such file or directory")
    with plain_snapshot(path) as plain:
        if not has_trailer(plain):
            raise Fatal("failed to restore: snapshot missing hash but --skip-hash-check=false")
        yield plain


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "--state":
        sys.stderr.write("usage: python -m k3s_backup.lab.fake_k3s --state FILE ARGS...\n")
        return 2
    state = FakeK3sState.load(Path(args[1]))
    return FakeK3s(state, sys.stdout, sys.stderr, sys.stdin, Path(args[1]).parent).run(args[2:])


if __name__ == "__main__":
    sys.exit(main())
