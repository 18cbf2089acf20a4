"""Pick the snapshot source: configured, or `auto` from what is on this node (and say why)."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from k3s_backup.config import Config
from k3s_backup.sources.base import Source
from k3s_backup.sources.k3s import K3sSource
from k3s_backup.sources.sqlite import SqliteSource


@dataclass(frozen=True)
class SourceChoice:
    kind: str
    reason: str


def sqlite_database(data_dir: Path) -> Path:
    return data_dir / "server" / "db" / "state.db"


def choose_source(config: Config) -> SourceChoice:
    if config.source != "auto":
        return SourceChoice(config.source, f'source = "{config.source}" in the configuration')
    db_dir = config.k3s.data_dir / "server" / "db"
    state_db, etcd_dir = sqlite_database(config.k3s.data_dir), db_dir / "etcd"
    if state_db.exists() and not etcd_dir.exists():
        return SourceChoice("sqlite", f"auto: {state_db} exists and {etcd_dir} does not")
    return SourceChoice("k3s", f"auto: no SQLite-only datastore under {db_dir}, so K3s's etcd")


def node_name(config: Config) -> str:
    return config.node_name or socket.gethostname().split(".")[0] or "node"


def open_source(config: Config, environ: Mapping[str, str]) -> Source:
    kind = choose_source(config).kind
    if kind == "etcd":
        # Imported here: grpc costs start-up time and memory that the k3s source never needs.
        from k3s_backup.sources.etcd import EtcdSource, EtcdTls

        etcd = config.etcd
        return EtcdSource(
            endpoints=list(etcd.endpoints),
            tls=EtcdTls(etcd.cacert, etcd.cert, etcd.key),
            snapshot_dir=config.snapshot_dir,
            cluster=config.cluster_name,
            node=node_name(config),
            connect_timeout=float(etcd.connect_timeout),
        )
    if kind == "sqlite":
        return SqliteSource(
            sqlite_database(config.k3s.data_dir),
            config.snapshot_dir,
            config.cluster_name,
            node_name(config),
        )
    return K3sSource(
        k3s_bin=config.k3s.bin,
        data_dir=config.k3s.data_dir,
        snapshot_dir=config.snapshot_dir,
        cluster=config.cluster_name,
        environ=environ,
    )
