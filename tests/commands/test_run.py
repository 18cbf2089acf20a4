"""`k3s-backup run` end to end on real parts: real etcd behind the k3s stand-in, real sshd."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from k3s_backup.lab.etcd import snapshot_status
from k3s_backup.lab.fake_k3s import FakeK3sState
from tests.support.cli_runner import Result, clock_at, invoke
from tests.support.tcp_proxy import CuttingProxy

OUR_NAME = re.compile(r"^k3s-lab-\d{8}-\d{6}-k3s-05-\d+(\.zip)?(\.zst)?(\.age)?$")
STORAGE_SUFFIX = re.compile(r"(\.zst)?(\.age)?$")


class Clock:
    """Local time that advances a minute per call, so each run gets its own name prefix."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 23, 2, 0, 0).astimezone()

    def __call__(self) -> datetime:
        self.current += timedelta(minutes=1)
        return self.current


@pytest.fixture
def config(lab, tmp_path) -> Path:
    return lab.write_config(tmp_path / "config.toml")


@pytest.fixture
def backup(lab, config) -> Callable[..., Result]:
    clock = Clock()

    def run(*args: str) -> Result:
        return invoke(["--config", str(config), *(args or ("run",))], environ=lab.env(), now=clock)

    return run


def ours(directory: Path) -> list[str]:
    """Our snapshot files in `directory`, as stored (a target adds `.zst` by default)."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if OUR_NAME.match(p.name))


def snapshots(directory: Path) -> list[str]:
    """The local snapshot names our stored copies decode to."""
    return sorted(STORAGE_SUFFIX.sub("", name, count=1) for name in ours(directory))


def zstd_decode(path: Path) -> bytes:
    """With the standard `zstd` tool, not project code: what an operator would do by hand."""
    return subprocess.run(["zstd", "-d", "-c", str(path)], capture_output=True, check=True).stdout


def set_state(lab, **changes) -> None:
    state = FakeK3sState.load(lab.state_file)
    for key, value in changes.items():
        setattr(state, key, value)
    state.save(lab.state_file)


def test_run_ships_a_byte_identical_verified_copy(lab, backup):
    lab.etcd.put("/registry/secrets/default/db", "s3cr3t")
    result = backup()
    assert result.code == 0, result.stderr
    [local] = ours(lab.snapshot_dir)
    [remote] = ours(lab.remote_dir)
    assert remote == local + ".zst"  # zstd is the default stored form
    plain = zstd_decode(lab.remote_dir / remote)
    assert plain == (lab.snapshot_dir / local).read_bytes()
    restored = lab.root / "restored.db"
    restored.write_bytes(plain)
    assert snapshot_status(restored)["totalKey"] > 0
    assert (lab.remote_dir / remote).stat().st_mode & 0o777 == 0o600
    assert lab.remote_dir.stat().st_mode & 0o777 == 0o700
    manifest = json.loads((lab.remote_dir / f"{remote}.json").read_text())
    data = (lab.remote_dir / remote).read_bytes()
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["size"] == len(data)
    assert manifest["plain_sha256"] == hashlib.sha256(plain).hexdigest()
    assert (manifest["snapshot"], manifest["compression"]) == (local, "zstd")
    assert manifest["cluster"] == "k3s-lab"
    assert manifest["node"] == "k3s-05"
    assert manifest["source"] == "k3s"
    assert manifest["created"].endswith("Z")
    assert "Backup complete" in result.stdout


def test_ten_runs_leave_newest_three_local_and_seven_remote(lab, backup):
    made = []
    for _ in range(10):
        result = backup()
        assert result.code == 0, result.stderr
        made.append(ours(lab.snapshot_dir)[-1])
    assert ours(lab.snapshot_dir) == sorted(made[-3:])
    assert snapshots(lab.remote_dir) == sorted(made[-7:])
    manifests = sorted(p.name for p in lab.remote_dir.glob("*.json"))
    assert manifests == sorted(f"{name}.zst.json" for name in made[-7:])


def test_foreign_and_k3s_own_files_survive_rotation(lab, backup):
    lab.snapshot_dir.mkdir(parents=True, exist_ok=True)
    lab.remote_dir.mkdir(parents=True, exist_ok=True)
    foreign = [
        "etcd-snapshot-k3s-05-1700000000",
        "etcd-snapshot-k3s-05-1700000000.zip",
        "k3s-lab-notes.txt",
        "k3s-lab-2-20200101-000000-k3s-05-1577836800",  # another cluster's name
        "-k3s-lab-20200101-000000-k3s-05-1",
        "k3s-lab-20200101-000000-k3s 05-1577836800",
        "k3s-lab-20200101-000000-k3s-05-1577836800;rm -rf ~",
        "k3s-lab-20200101-000000-k3s-05-1577836800\nx",
    ]
    for directory in (lab.snapshot_dir, lab.remote_dir):
        for name in foreign:
            (directory / name).write_bytes(b"not ours")
    for _ in range(9):
        assert backup().code == 0
    for directory in (lab.snapshot_dir, lab.remote_dir):
        for name in foreign:
            assert (directory / name).read_bytes() == b"not ours", name


def test_unknown_host_key_is_refused_and_nothing_uploaded(lab, backup):
    lab.known_hosts.write_text("")
    result = backup()
    assert result.code == 3
    assert "is not in" in result.stderr and "refusing to connect" in result.stderr
    assert re.search(r"SHA256:[A-Za-z0-9+/]{43}", result.stderr)
    assert "ssh-keyscan -p" in result.stderr
    assert ours(lab.remote_dir) == []
    assert len(ours(lab.snapshot_dir)) == 1  # the snapshot is kept locally


def test_changed_host_key_is_refused_and_nothing_uploaded(lab, backup):
    lab.sshd.regenerate_host_key()
    result = backup()
    assert result.code == 3
    assert "CHANGED" in result.stderr
    assert "ssh-keygen -R" in result.stderr
    assert ours(lab.remote_dir) == []


def test_ssh_server_down_gives_exit_3_keeps_local_and_remote_untouched(lab, backup):
    assert backup().code == 0
    before = {p.name: p.read_bytes() for p in lab.remote_dir.iterdir()}
    lab.sshd.stop()
    result = backup()
    assert result.code == 3
    assert "backup-host" in result.stderr and "PARTIAL" in result.stderr
    assert len(ours(lab.snapshot_dir)) == 2
    assert {p.name: p.read_bytes() for p in lab.remote_dir.iterdir()} == before


def test_a_target_that_missed_runs_catches_up_oldest_first(lab, backup):
    made = []
    assert backup().code == 0
    made.append(ours(lab.snapshot_dir)[-1])
    lab.sshd.stop()
    for _ in range(2):
        assert backup().code == 3
        made.append(ours(lab.snapshot_dir)[-1])
    lab.sshd.start()
    result = backup()
    assert result.code == 0, result.stderr
    made.append(ours(lab.snapshot_dir)[-1])
    assert snapshots(lab.remote_dir) == sorted(made)  # no hole off-node
    caught_up = [line.split()[2] for line in result.lines if line.startswith("Caught up")]
    assert caught_up == [f"{name}.zst" for name in made[1:3]]  # oldest first, before the new


def test_connection_cut_mid_upload_leaves_no_final_name_then_next_run_succeeds(lab, tmp_path):
    lab.etcd.put("/registry/secrets/default/big", os.urandom(200_000))  # incompressible
    with CuttingProxy(("127.0.0.1", lab.sshd.port), cut_after=60_000) as proxy:
        lab.known_hosts.write_text(
            lab.sshd.known_hosts_line().replace(f":{lab.sshd.port}", f":{proxy.port}") + "\n"
        )
        target = lab.ssh_target(port=proxy.port)
        config = lab.write_config(tmp_path / "cut.toml", targets=[target])
        clock = Clock()
        result = invoke(["--config", str(config), "run"], environ=lab.env(), now=clock)
        assert result.code == 3, (result.stdout, result.stderr)
        assert ours(lab.remote_dir) == [], (result.stdout, result.stderr)
        proxy.cut_after = None
        result = invoke(["--config", str(config), "run"], environ=lab.env(), now=clock)
    assert result.code == 0, result.stderr
    assert snapshots(lab.remote_dir) == ours(lab.snapshot_dir)


def test_second_run_while_one_holds_the_lock_exits_4(lab, backup, tmp_path):
    state_dir = tmp_path / "lab-state"
    state_dir.mkdir(exist_ok=True)
    config_text = (tmp_path / "config.toml").read_text()
    assert str(lab.root / "state") in config_text
    lock_dir = lab.root / "state"
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / "run.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = backup()
    assert result.code == 4
    assert "another k3s-backup run holds the lock" in result.stderr
    assert ours(lab.snapshot_dir) == []
    assert backup().code == 0  # the lock is free again once its holder is gone


@pytest.mark.parametrize("failure", ["fatal", "silent", "corrupt", "busy"])
def test_k3s_failing_exits_1_ships_and_rotates_nothing(lab, backup, failure):
    for _ in range(4):
        assert backup().code == 0
    local_before, remote_before = ours(lab.snapshot_dir), ours(lab.remote_dir)
    set_state(lab, failure=failure)
    result = backup()
    assert result.code == 1
    assert "nothing shipped" in result.stderr
    assert ours(lab.remote_dir) == remote_before
    if failure == "corrupt":
        assert "trailer" in result.stderr
    else:
        assert ours(lab.snapshot_dir) == local_before


def test_the_file_shipped_is_the_one_k3s_made_not_the_newest(lab, backup):
    lab.snapshot_dir.mkdir(parents=True, exist_ok=True)
    decoy = lab.snapshot_dir / "k3s-lab-20991231-235959-k3s-05-4102444799"
    decoy.write_bytes(b"a newer-looking file that this run did not make")
    result = backup()
    assert result.code == 0, result.stderr
    shipped = [n for n in snapshots(lab.remote_dir) if n != decoy.name]
    assert len(shipped) == 1
    assert shipped[0] in result.stdout
    assert decoy.name not in snapshots(lab.remote_dir)


def test_silent_failure_is_named(lab, backup):
    set_state(lab, failure="silent")
    result = backup()
    assert result.code == 1
    assert "exited 0 but did not produce" in result.stderr


def test_compressed_snapshots_are_checked_and_shipped(lab, backup):
    set_state(lab, compress_default=True, generation="legacy")
    result = backup()
    assert result.code == 0, result.stderr
    [remote] = ours(lab.remote_dir)
    assert remote.endswith(".zip")
    assert (lab.snapshot_dir / remote).stat().st_mode & 0o777 == 0o600  # legacy made it 0644


def test_local_delete_that_leaves_the_file_falls_back_with_a_warning(lab, backup):
    set_state(lab, delete_noop=True)
    for _ in range(4):
        assert backup().code == 0
    assert len(ours(lab.snapshot_dir)) == 3
    last = backup()
    assert "left the file" in last.stderr


def test_log_and_state_record_the_run(lab, backup):
    assert backup().code == 0
    log = (lab.root / "k3s-backup.log").read_text().splitlines()
    stamp = r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d\] "  # local time, its offset
    assert log and all(re.match(stamp, line) for line in log)
    assert any("Backup complete" in line for line in log)
    assert any("Target backup-host: 1 copy (" in line for line in log)
    state = json.loads((lab.root / "state" / "state.json").read_text())
    assert state["last_run"]["outcome"] == "success"
    assert state["last_run"]["targets"]["backup-host"]["ok"] is True
    lab.sshd.stop()
    assert backup().code == 3
    state = json.loads((lab.root / "state" / "state.json").read_text())
    assert state["last_run"]["outcome"] == "partial"
    assert state["last_success"]["outcome"] == "success"


def test_list_json_and_verify(lab, backup):
    assert backup().code == 0
    assert backup().code == 0
    listed = backup("list", "--json")
    assert listed.code == 0
    entries = json.loads(listed.stdout)
    assert {e["location"] for e in entries} == {"local", "backup-host"}
    assert len(entries) == 4
    for entry in entries:
        assert {"name", "location", "size", "created", "sha256"} <= set(entry)
        assert OUR_NAME.match(entry["name"]) and len(entry["sha256"]) == 64
    verified = backup("verify")
    assert verified.code == 0, verified.stderr


def test_verify_names_a_corrupted_and_a_truncated_copy(lab, backup):
    assert backup().code == 0
    assert backup().code == 0
    first, second = ours(lab.remote_dir)
    data = bytearray((lab.remote_dir / first).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (lab.remote_dir / first).write_bytes(bytes(data))
    truncated = (lab.remote_dir / second).read_bytes()[:-100]
    (lab.remote_dir / second).write_bytes(truncated)
    result = backup("verify", "--json")
    assert result.code == 1
    bad = {f["name"]: f["problem"] for f in json.loads(result.stdout) if not f["ok"]}
    assert "corrupted" in bad[first]
    assert "truncated" in bad[second]


def test_prune_dry_run_changes_nothing_then_prune_rotates(lab, backup, tmp_path):
    for _ in range(5):
        assert backup().code == 0
    smaller = lab.write_config(tmp_path / "small.toml", keep_local=1)
    before_local, before_remote = ours(lab.snapshot_dir), ours(lab.remote_dir)
    dry = invoke(["--config", str(smaller), "prune", "--dry-run"], environ=lab.env())
    assert dry.code == 0
    assert "would remove" in dry.stdout
    for name in before_local[:-1]:  # why, in words
        assert f"local: would remove {name}  (older than the one kept)" in dry.stdout
    assert f"local: keep   {before_local[-1]}  (the newest copy)" in dry.stdout
    assert (ours(lab.snapshot_dir), ours(lab.remote_dir)) == (before_local, before_remote)
    real = invoke(["--config", str(smaller), "prune"], environ=lab.env())
    assert real.code == 0
    assert [f"local: removed {name}" for name in before_local[:-1]] == [
        line for line in real.stdout.splitlines() if line.startswith("local: removed")
    ]
    assert ours(lab.snapshot_dir) == before_local[-1:]


def test_local_target_kind(lab, tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir(mode=0o700)
    config = lab.write_config(
        tmp_path / "local.toml",
        targets=[{"name": "usb", "type": "local", "path": str(usb), "keep": 2}],
    )
    clock = Clock()
    for _ in range(3):
        assert invoke(["--config", str(config), "run"], environ=lab.env(), now=clock).code == 0
    assert len(ours(usb)) == 2
    assert not [p for p in usb.iterdir() if p.name.startswith(".")]
    assert os.stat(usb).st_mode & 0o777 == 0o700


SAME_SECOND = datetime(2026, 11, 23, 2, 0, 0).astimezone()


def _same_second_snapshot(lab) -> Path:
    """A snapshot a run in the same second as the next one left (K3s adds its own unix time,
    which can differ by one): the same `<cluster>-<stamp>` prefix, another full name."""
    stamp = SAME_SECOND.strftime("%Y%m%d-%H%M%S")
    lab.snapshot_dir.mkdir(parents=True, exist_ok=True)
    earlier = lab.snapshot_dir / f"k3s-lab-{stamp}-k3s-05-1795399199"
    lab.etcd.snapshot_save(earlier)
    earlier.chmod(0o600)
    return earlier


def test_a_snapshot_from_a_run_in_the_same_second_is_not_taken_for_this_one(lab, config):
    earlier = _same_second_snapshot(lab)
    kept = earlier.read_bytes()
    result = invoke(["--config", str(config), "run"], environ=lab.env(), now=clock_at(SAME_SECOND))
    assert result.code == 0, result.stderr
    [made] = [n for n in ours(lab.snapshot_dir) if n != earlier.name]
    assert f"Backup complete: {made} " in result.stdout
    assert made in snapshots(lab.remote_dir)
    assert earlier.read_bytes() == kept


def test_silent_failure_is_named_even_beside_a_same_second_snapshot(lab, config):
    _same_second_snapshot(lab)
    set_state(lab, failure="silent")
    result = invoke(["--config", str(config), "run"], environ=lab.env(), now=clock_at(SAME_SECOND))
    assert result.code == 1
    assert "exited 0 but did not produce" in result.stderr
    assert ours(lab.remote_dir) == []
