"""`k3s server --cluster-reset [--cluster-reset-restore-path]` of the stand-in: K3s's checks
(config, token against the snapshot's bootstrap data, etcd stopped), then the restore into the
real etcd's data dir."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from k3s_backup.lab.etcd import EtcdError, plain_snapshot, restore_snapshot
from k3s_backup.lab.hold import hold_here
from k3s_backup.lab.k3s_cli import Fatal, Logger, has_trailer
from k3s_backup.plumbing.loopback import pid_runs

if TYPE_CHECKING:
    from k3s_backup.lab.fake_k3s import FakeK3sState

RESET_MESSAGE = (
    "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now."
    " Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes"
)
BOOTSTRAP_PREFIX = "/bootstrap/"


class ServerMixin:
    state: FakeK3sState
    log: Logger

    def _data_dir(self, flags: dict[str, str]) -> Path:
        raise NotImplementedError

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
