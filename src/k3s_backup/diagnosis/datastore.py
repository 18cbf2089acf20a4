"""Where K3s keeps its data on this node (embedded etcd, SQLite, or an external datastore that
no node-side backup can reach) and the source that backs it up."""

from __future__ import annotations

import yaml

from k3s_backup.checks import FAIL, OK
from k3s_backup.config import Config
from k3s_backup.diagnosis.check import Check
from k3s_backup.sources.factory import choose_source


def external_endpoint(config: Config) -> str | None:
    directory = config.k3s.config_dir
    files = [directory / "config.yaml", *sorted((directory / "config.yaml.d").glob("*.yaml"))]
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("datastore-endpoint"):
            return f"datastore-endpoint in {path}"
    return None


def datastore(config: Config) -> Check:
    check = _datastore(config)
    choice = choose_source(config)
    check.saw += f"; source {choice.kind} ({choice.reason})"
    return check


def _datastore(config: Config) -> Check:
    db = config.k3s.data_dir / "server" / "db"
    external = external_endpoint(config)
    if external:
        return Check(
            "datastore",
            FAIL,
            f"external datastore ({external}): K3s keeps no data on this node to back up",
            "back the external database up with its own tools; remove the cron job with"
            " `k3s-backup uninstall`",
        )
    if (db / "etcd" / "member" / "wal").is_dir():
        return Check("datastore", OK, f"embedded etcd ({db / 'etcd'})")
    if (db / "state.db").exists():
        if choose_source(config).kind == "sqlite":
            return Check(
                "datastore", OK, f"SQLite ({db / 'state.db'}), backed up by the sqlite source"
            )
        return Check(
            "datastore",
            FAIL,
            f"SQLite ({db / 'state.db'}): `k3s etcd-snapshot` cannot back it up (K3s says"
            f" 'etcd datastore disabled'), and source = {config.source!r}",
            'set source = "sqlite" (or "auto") in the configuration, or move K3s to'
            " embedded etcd (`k3s server --cluster-init`, see the K3s docs)",
        )
    return Check(
        "datastore",
        FAIL,
        f"neither {db / 'etcd' / 'member' / 'wal'} nor {db / 'state.db'} exists",
        "check k3s.data_dir in the configuration (K3s's --data-dir)",
    )
