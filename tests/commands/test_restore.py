"""`k3s-backup restore` on real parts: the real etcd runs from K3s's data dir, the stand-in
`systemctl` stops and starts it, the stand-in `k3s server --cluster-reset` restores into it with
`etcdctl snapshot restore`, and copies come from a real sshd."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pyrage
import pytest

from k3s_backup.config import NodeConfig
from k3s_backup.lab.fake_k3s import FakeK3sState, new_token
from k3s_backup.lab.lab import Lab
from tests.support.cli_runner import Result, invoke

# A local snapshot (`.zip` when K3s compressed it) or a target's stored form (`.zst`, `.age`).
OUR_NAME = re.compile(r"^k3s-lab-\d{8}-\d{6}-k3s-05-\d+(\.zip|\.zst)?(\.age)?$")


class Clock:
    """Local time that advances a minute per call, so each run gets its own name prefix."""

    def __init__(self) -> None:
        self.current = datetime(2026, 11, 23, 2, 0, 0).astimezone()

    def __call__(self) -> datetime:
        self.current += timedelta(minutes=1)
        return self.current


Cli = Callable[..., Result]


@pytest.fixture
def config(lab: Lab, tmp_path: Path) -> Path:
    return write_config(lab, tmp_path / "config.toml")


def write_config(lab: Lab, path: Path, **overrides: object) -> Path:
    k3s = {"bin": lab.bin_dir / "k3s", "data_dir": lab.data_dir, "config_dir": lab.root / "etc"}
    return lab.write_config(path, k3s=k3s, restore={"ready_timeout": 60}, **overrides)


@pytest.fixture
def cli(lab: Lab, config: Path) -> Cli:
    clock = Clock()

    def run(*args: str, stdin: str = "") -> Result:
        return invoke(["--config", str(config), *args], environ=lab.env(), stdin=stdin, now=clock)

    return run


def set_state(lab: Lab, **changes: object) -> None:
    state = FakeK3sState.load(lab.state_file)
    for key, value in changes.items():
        setattr(state, key, value)
    state.save(lab.state_file)


def etcd_pid(lab: Lab) -> int | None:
    return FakeK3sState.load(lab.state_file).etcd_pid


def k3s_active(lab: Lab) -> bool:
    command = ["systemctl", "is-active", "--quiet", "k3s"]
    return subprocess.run(command, env=lab.env(), check=False, timeout=60).returncode == 0


def db_dir(lab: Lab) -> Path:
    return lab.data_dir / "server" / "db"


def etcd_olds(lab: Lab) -> list[Path]:
    return sorted(db_dir(lab).glob("etcd-old-*"))


def write_keys(lab: Lab) -> dict[str, bytes]:
    lab.etcd.put("/registry/secrets/default/db", "s3cr3t")
    lab.etcd.put("/registry/configmaps/default/app", "v1")
    lab.etcd.put("/registry/configmaps/default/gone-later", "here")
    return lab.etcd.get_all()


def change_keys(lab: Lab) -> None:
    lab.etcd.put("/registry/configmaps/default/app", "v2")
    assert lab.etcd.delete("/registry/configmaps/default/gone-later") == 1
    lab.etcd.put("/registry/configmaps/default/created-after", "new")


def token_file(lab: Lab) -> Path:
    return lab.data_dir / "server" / "token"


def assert_untouched(lab: Lab, pid: int | None, keys: dict[str, bytes]) -> None:
    assert etcd_pid(lab) == pid
    assert k3s_active(lab)
    assert lab.etcd.get_all() == keys
    assert etcd_olds(lab) == []


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "zip"])
def test_restore_latest_brings_back_every_key_and_drops_later_ones(
    lab: Lab, cli: Cli, compressed: bool
) -> None:
    set_state(lab, compress_default=compressed)
    at_backup = write_keys(lab)
    assert cli("run").code == 0
    change_keys(lab)
    token_before = token_file(lab).read_text()
    result = cli("restore", "latest", "--yes")
    assert result.code == 0, result.stderr
    assert lab.etcd.get_all() == at_backup
    [old] = etcd_olds(lab)
    assert f"moved to {old}" in result.stdout and str(old) in result.lines[-1]
    assert not (db_dir(lab) / "reset-flag").exists()  # cleared by the start
    assert k3s_active(lab)
    assert token_file(lab).read_text() == token_before
    assert "Restore of k3s-lab-" in result.stdout and "complete" in result.stdout
    assert [p for p in (lab.root / "state").iterdir() if p.name.startswith("restore-")] == []


def test_plan_is_numbered_as_in_the_guide(lab: Lab, cli: Cli) -> None:
    write_keys(lab)
    assert cli("run").code == 0
    result = cli("restore", "--dry-run")
    assert result.code == 0, result.stderr
    numbers = [m.group(1) for m in re.finditer(r"^  (\d[a-z]?)\. ", result.stdout, re.M)]
    assert numbers == ["1", "2", "3", "4a", "4b", "5"]
    assert re.search(
        r"3\. \S+/k3s server --cluster-reset --cluster-reset-restore-path=/", result.stdout
    )


def test_dry_run_runs_nothing(lab: Lab, cli: Cli) -> None:
    write_keys(lab)
    assert cli("run").code == 0
    change_keys(lab)
    keys, pid = lab.etcd.get_all(), etcd_pid(lab)
    before = sorted(
        p for p in lab.root.rglob("*") if "member" not in p.parts and p.suffix != ".log"
    )
    result = cli("restore", "--dry-run")
    assert result.code == 0, result.stderr
    assert "Dry run: nothing was stopped or changed" in result.stdout
    assert_untouched(lab, pid, keys)
    after = sorted(p for p in lab.root.rglob("*") if "member" not in p.parts and p.suffix != ".log")
    assert after == before


def test_corrupted_remote_copy_is_refused_before_anything_stops(lab: Lab, cli: Cli) -> None:
    write_keys(lab)
    assert cli("run").code == 0
    change_keys(lab)
    [remote] = [p for p in lab.remote_dir.iterdir() if OUR_NAME.match(p.name)]
    data = bytearray(remote.read_bytes())
    data[len(data) // 2] ^= 0xFF
    remote.write_bytes(bytes(data))
    keys, pid = lab.etcd.get_all(), etcd_pid(lab)
    result = cli("restore", "--from", "backup-host", "--yes")
    assert result.code == 1
    assert "does not verify" in result.stderr and "nothing was changed" in result.stderr
    assert_untouched(lab, pid, keys)


def test_a_bad_local_copy_falls_back_to_the_targets_copy(lab: Lab, cli: Cli) -> None:
    at_backup = write_keys(lab)
    assert cli("run").code == 0
    change_keys(lab)
    [local] = [p for p in lab.snapshot_dir.iterdir() if OUR_NAME.match(p.name)]
    local.write_bytes(local.read_bytes()[:-100])  # truncated
    result = cli("restore", "--yes")
    assert result.code == 0, result.stderr
    assert "refusing the copy on local" in result.stderr
    assert "from backup-host" in result.stdout
    assert lab.etcd.get_all() == at_backup


def test_restore_from_the_target_when_the_local_copy_is_gone(lab: Lab, cli: Cli) -> None:
    at_backup = write_keys(lab)
    assert cli("run").code == 0
    change_keys(lab)
    for path in lab.snapshot_dir.iterdir():
        path.unlink()
    for path in (lab.root / "state" / "bundles").iterdir():
        path.unlink()
    result = cli("restore", "latest", "--yes")
    assert result.code == 0, result.stderr
    assert "from backup-host" in result.stdout
    assert lab.etcd.get_all() == at_backup


def test_failing_cluster_reset_keeps_the_old_data_and_starts_k3s_again(lab: Lab, cli: Cli) -> None:
    write_keys(lab)
    assert cli("run").code == 0
    change_keys(lab)
    keys = lab.etcd.get_all()
    set_state(lab, reset_failure=True)
    result = cli("restore", "--yes")
    assert result.code == 1
    assert "step 3 failed" in result.stderr
    assert "simulated cluster-reset failure" in result.stderr
    assert "Nothing was restored" in result.stderr and "started again" in result.stderr
    assert k3s_active(lab)
    assert lab.etcd.get_all() == keys
    assert etcd_olds(lab) == []
    kept = re.search(r"The verified snapshot is kept at (\S+)", result.stderr)
    assert kept and Path(kept.group(1)).stat().st_mode & 0o777 == 0o600


def test_unknown_name_lists_what_exists_and_a_prefix_chooses(lab: Lab, cli: Cli) -> None:
    assert cli("run").code == 0
    assert cli("run").code == 0
    [older, newer] = sorted(p.name for p in lab.snapshot_dir.iterdir())
    unknown = cli("restore", "k3s-lab-1999", "--dry-run")
    assert unknown.code == 2
    assert "no snapshot named 'k3s-lab-1999'" in unknown.stderr
    assert older in unknown.stderr and newer in unknown.stderr
    ambiguous = cli("restore", "k3s-lab-2026", "--dry-run")
    assert ambiguous.code == 2 and "matches 2 snapshots" in ambiguous.stderr
    chosen = cli("restore", older[: len("k3s-lab-20261123-020")], "--dry-run")
    assert chosen.code == 0, chosen.stderr
    assert f"Plan to restore {older}" in chosen.stdout
    assert cli("restore", "--from", "nas", "--dry-run").code == 2


def test_wrong_cluster_name_at_the_prompt_changes_nothing(lab: Lab, cli: Cli) -> None:
    write_keys(lab)
    assert cli("run").code == 0
    change_keys(lab)
    keys, pid = lab.etcd.get_all(), etcd_pid(lab)
    result = cli("restore", stdin="k3s-homelab\n")
    assert result.code == 1
    assert "Type the cluster name (k3s-lab)" in result.stdout
    assert "not confirmed" in result.stderr
    assert_untouched(lab, pid, keys)


# ---- the pre-flight ----------------------------------------------------------------------


def test_a_differing_token_is_refused_unless_the_saved_one_is_put_in_place(
    lab: Lab, cli: Cli
) -> None:
    at_backup = write_keys(lab)
    assert cli("run").code == 0
    original = token_file(lab).read_text()
    token_file(lab).write_text(new_token() + "\n")
    change_keys(lab)
    keys, pid = lab.etcd.get_all(), etcd_pid(lab)
    refused = cli("restore", stdin="n\n")
    assert refused.code == 1
    assert "differs from the one saved with the snapshot" in refused.stderr
    assert "nothing was stopped" in refused.stderr
    assert_untouched(lab, pid, keys)
    result = cli("restore", "--yes")
    assert result.code == 0, result.stderr
    assert token_file(lab).read_text() == original
    assert lab.etcd.get_all() == at_backup
    [kept] = token_file(lab).parent.glob("token.bak-*")
    assert kept.read_text() != original


def test_the_saved_token_is_restored_on_a_node_that_lost_it(lab: Lab, cli: Cli) -> None:
    at_backup = write_keys(lab)
    assert cli("run").code == 0
    original = token_file(lab).read_text()
    token_file(lab).unlink()
    change_keys(lab)
    result = cli("restore", stdin="y\nk3s-lab\n")  # agree to the token, then type the name
    assert result.code == 0, result.stderr
    assert "is missing" in result.stderr
    assert token_file(lab).read_text() == original
    assert token_file(lab).stat().st_mode & 0o777 == 0o600
    assert lab.etcd.get_all() == at_backup


def test_a_server_line_in_the_k3s_config_is_refused_even_with_force(lab: Lab, cli: Cli) -> None:
    write_keys(lab)
    assert cli("run").code == 0
    drop_ins = lab.root / "etc" / "config.yaml.d"
    drop_ins.mkdir(parents=True)
    (drop_ins / "50-join.yaml").write_text("# joined later\nserver: https://10.0.0.5:6443\n")
    keys, pid = lab.etcd.get_all(), etcd_pid(lab)
    result = cli("restore", "--yes", "--force")
    assert result.code == 1
    assert "50-join.yaml line 2 has `server: https://10.0.0.5:6443`" in result.stderr
    assert_untouched(lab, pid, keys)


def test_a_leftover_reset_flag_is_refused_unless_forced(lab: Lab, cli: Cli) -> None:
    at_backup = write_keys(lab)
    assert cli("run").code == 0
    change_keys(lab)
    (db_dir(lab) / "reset-flag").touch()
    keys, pid = lab.etcd.get_all(), etcd_pid(lab)
    refused = cli("restore", "--yes")
    assert refused.code == 1
    assert "reset-flag is left from an earlier --cluster-reset" in refused.stderr
    assert "--force overrides this one" in refused.stderr
    assert_untouched(lab, pid, keys)
    forced = cli("restore", "--yes", "--force")
    assert forced.code == 0, forced.stderr
    assert "overridden by --force" in forced.stderr
    assert lab.etcd.get_all() == at_backup
    assert not (db_dir(lab) / "reset-flag").exists()


def test_an_older_k3s_than_the_snapshots_is_refused_even_with_force(lab: Lab, cli: Cli) -> None:
    set_state(lab, version="v1.34.2+k3s1")
    write_keys(lab)
    assert cli("run").code == 0
    set_state(lab, version="v1.33.4+k3s1")
    keys, pid = lab.etcd.get_all(), etcd_pid(lab)
    result = cli("restore", "--yes", "--force")
    assert result.code == 1
    assert "runs K3s v1.33.4+k3s1, older than the v1.34.2+k3s1" in result.stderr
    assert_untouched(lab, pid, keys)


def test_a_snapshot_without_bundle_needs_force(lab: Lab, cli: Cli) -> None:
    at_backup = write_keys(lab)
    assert cli("run").code == 0
    change_keys(lab)
    for path in [*(lab.root / "state" / "bundles").iterdir(), *lab.remote_dir.glob("*.tar")]:
        path.unlink()
    keys, pid = lab.etcd.get_all(), etcd_pid(lab)
    refused = cli("restore", "--yes")
    assert refused.code == 1 and "no restore bundle found" in refused.stderr
    assert_untouched(lab, pid, keys)
    forced = cli("restore", "--yes", "--force")
    assert forced.code == 0, forced.stderr
    assert lab.etcd.get_all() == at_backup


# ---- other nodes -------------------------------------------------------------------------


def test_plan_names_the_other_servers_and_agents(lab: Lab, tmp_path: Path) -> None:
    node = {
        "host": lab.sshd.host,
        "user": lab.sshd.user,
        "port": lab.sshd.port,
        "identity_file": str(lab.sshd.client_key),
        "known_hosts": str(lab.known_hosts),
        "data_dir": str(tmp_path / "peer"),
    }
    config = write_config(lab, tmp_path / "ha.toml")
    text = config.read_text().replace("[restore]\n", "")
    text = text.replace("ready_timeout = 60\n", "")
    text += "\n[restore]\nready_timeout = 60\n"
    for role in ("servers", "agents"):
        text += f"\n[[restore.{role}]]\n" + "".join(
            f"{key} = {value!r}\n".replace("'", '"') for key, value in node.items()
        )
    config.write_text(text)
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 0
    result = invoke(["--config", str(config), "restore", "--dry-run"], environ=lab.env())
    assert result.code == 0, result.stderr
    peer = f"{lab.sshd.user}@{lab.sshd.host}"
    steps = [line.strip() for line in result.lines if re.match(r"^  \d[a-z]?\. ", line)]
    assert steps[1] == f"1b. on server {peer}: systemctl stop k3s"
    assert steps[2] == f"1c. on agent {peer}: systemctl stop k3s-agent"
    db = tmp_path / "peer" / "server" / "db"
    assert re.fullmatch(
        rf"4c\. on server {re.escape(peer)}: mv -- {db} {db}\.bak-\d{{8}}-\d{{6}}", steps[-4]
    )
    assert steps[-3] == f"4d. on server {peer}: systemctl start k3s"
    assert steps[-2] == f"4e. on agent {peer}: systemctl start k3s-agent"


def test_moving_a_peers_database_aside_over_ssh(lab: Lab, tmp_path: Path) -> None:
    from k3s_backup.restore.peers import RemoteNode

    peer_db = tmp_path / "peer dir" / "server" / "db"  # a space: the argument must be quoted
    (peer_db / "etcd").mkdir(parents=True)
    (peer_db / "etcd" / "keep-me").write_text("old member data")
    config = NodeConfig(
        host=lab.sshd.host,
        user=lab.sshd.user,
        port=lab.sshd.port,
        identity_file=lab.sshd.client_key,
        known_hosts=lab.known_hosts,
        data_dir=tmp_path / "peer dir",
    )
    with RemoteNode(config, "server") as node:
        result = node.run(node.move_db_command("20261123-020000"))
    assert result.status == 0, result.output
    moved = peer_db.with_name("db.bak-20261123-020000")
    assert not peer_db.exists()
    assert (moved / "etcd" / "keep-me").read_text() == "old member data"


def test_servers_and_agents_named_on_the_command_line(lab: Lab, cli: Cli) -> None:
    assert cli("run").code == 0
    result = cli("restore", "--dry-run", "--servers", "10.0.0.2, 10.0.0.3", "--agents", "")
    assert result.code == 0, result.stderr
    stops = [line.strip() for line in result.lines if "systemctl stop" in line]
    assert stops[1:] == [
        "1b. on server root@10.0.0.2: systemctl stop k3s",
        "1c. on server root@10.0.0.3: systemctl stop k3s",
    ]
    assert "k3s-agent" not in result.stdout


@pytest.mark.parametrize("compression", ["zstd", "zip"])
def test_restore_from_an_encrypting_target_needs_the_identity(
    lab: Lab, tmp_path: Path, compression: str
) -> None:
    identity = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "age.key"
    key_file.write_text(f"# created for the test\n{identity}\n")
    target = lab.ssh_target(compression=compression, age_recipients=[str(identity.to_public())])
    config = write_config(lab, tmp_path / "age.toml", targets=[target])
    clock = Clock()

    def cli(*args: str) -> Result:
        return invoke(["--config", str(config), *args], environ=lab.env(), now=clock)

    at_backup = write_keys(lab)
    assert cli("run").code == 0
    [stored] = [p.name for p in lab.remote_dir.iterdir() if OUR_NAME.match(p.name)]
    assert stored.endswith(".age")
    change_keys(lab)
    keys, pid = lab.etcd.get_all(), etcd_pid(lab)
    refused = cli("restore", "--from", "backup-host", "--yes")
    assert refused.code == 1 and "pass --identity FILE" in refused.stderr
    assert_untouched(lab, pid, keys)
    wrong_file = tmp_path / "wrong.key"
    wrong_file.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    wrong = cli("restore", "--from", "backup-host", "--yes", "--identity", str(wrong_file))
    assert wrong.code == 1 and "cannot decrypt it with the given identity" in wrong.stderr
    assert "nothing was changed" in wrong.stderr
    assert_untouched(lab, pid, keys)
    result = cli("restore", "--from", "backup-host", "--yes", "--identity", str(key_file))
    assert result.code == 0, result.stderr
    assert "no restore bundle" not in result.stderr  # the encrypted bundle was read too
    assert lab.etcd.get_all() == at_backup


def kine_rows(database: Path) -> list[tuple[int, str, bytes]]:
    with closing(sqlite3.connect(database)) as db:
        return list(db.execute("SELECT id, name, value FROM kine ORDER BY id"))


def make_kine_datastore(database: Path) -> None:
    database.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE kine (id INTEGER PRIMARY KEY, name TEXT, value BLOB)")
        rows = [(i, f"/registry/configmaps/default/cm-{i}", b"v1") for i in range(1, 101)]
        db.executemany("INSERT INTO kine VALUES (?, ?, ?)", rows)
        db.commit()


def leave_a_stale_wal(database: Path) -> tuple[bytes, list[tuple[int, str, bytes]]]:
    """Commit changes and keep the WAL file K3s's SQLite would leave behind when stopped hard:
    a restore that left it beside the new state.db would have SQLite replay it."""
    wal = database.with_name("state.db-wal")
    db = sqlite3.connect(database)
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("UPDATE kine SET value = ? WHERE id <= 50", (b"v2",))
    db.execute("DELETE FROM kine WHERE id > 90")
    db.commit()
    kept, rows = wal.read_bytes(), list(db.execute("SELECT id, name, value FROM kine ORDER BY id"))
    db.close()  # checkpoints and removes the WAL; put it back as a hard stop would leave it
    wal.write_bytes(kept)
    return kept, rows  # reading the database now would replay and remove the WAL


def sqlite_config(lab: Lab, path: Path) -> Path:
    node = FakeK3sState.load(lab.state_file).node_name  # what `kubectl get nodes` reports
    return write_config(lab, path, source="sqlite", node_name=node)


def test_sqlite_restore_puts_the_copy_in_place_and_keeps_the_old_database(
    lab: Lab, tmp_path: Path
) -> None:
    database = db_dir(lab) / "state.db"
    make_kine_datastore(database)
    config = sqlite_config(lab, tmp_path / "sqlite.toml")
    clock = Clock()

    def cli(*args: str) -> Result:
        return invoke(["--config", str(config), *args], environ=lab.env(), now=clock)

    at_backup = kine_rows(database)
    assert cli("run").code == 0
    wal, changed = leave_a_stale_wal(database)
    assert changed != at_backup
    before = database.read_bytes()
    dry = cli("restore", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert "sqlite-old-" in dry.stdout
    assert database.read_bytes() == before and database.with_name("state.db-wal").exists()
    result = cli("restore", "latest", "--yes")
    assert result.code == 0, result.stderr
    assert kine_rows(database) == at_backup
    assert not database.with_name("state.db-wal").exists()
    assert database.stat().st_mode & 0o777 == 0o600
    [aside] = sorted(db_dir(lab).glob("sqlite-old-*"))
    assert (aside / "state.db-wal").read_bytes() == wal
    assert kine_rows(aside / "state.db") == changed  # the old database, whole, with its WAL
    assert k3s_active(lab)
    assert str(aside) in result.lines[-1]


def test_sqlite_restore_refuses_other_servers(lab: Lab, tmp_path: Path) -> None:
    database = db_dir(lab) / "state.db"
    make_kine_datastore(database)
    config = sqlite_config(lab, tmp_path / "sqlite.toml")
    run = invoke(["--config", str(config), "run"], environ=lab.env(), now=Clock())
    assert run.code == 0, run.stderr
    args = ["--config", str(config), "restore", "--yes", "--servers", "10.0.0.2"]
    result = invoke(args, environ=lab.env(), now=Clock())
    assert result.code == 1
    assert "a SQLite datastore serves a single server" in result.stderr
    assert not list(db_dir(lab).glob("sqlite-old-*")) and k3s_active(lab)
