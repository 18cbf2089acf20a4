"""`k3s-backup fetch NAME --out FILE`: download, verify, decode; on real etcd snapshots over a
real sshd."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from k3s_backup.formats.etcd_snapshot import check_file
from k3s_backup.lab.etcd import restore_snapshot
from k3s_backup.lab.lab import Lab
from tests.commands.test_restore import OUR_NAME, Cli, Clock, set_state, write_config
from tests.support.cli_runner import Result, invoke


@pytest.fixture
def cli(lab: Lab, tmp_path: Path) -> Cli:
    config = write_config(lab, tmp_path / "config.toml")
    clock = Clock()

    def run(*args: str) -> Result:
        return invoke(["--config", str(config), *args], environ=lab.env(), now=clock)

    return run


def only_snapshot(directory: Path) -> Path:
    [path] = [p for p in directory.iterdir() if OUR_NAME.match(p.name)]
    return path


def test_fetch_from_the_target_writes_the_plain_verified_file(
    lab: Lab, cli: Cli, tmp_path: Path
) -> None:
    lab.etcd.put("/registry/secrets/default/db", "s3cr3t")
    assert cli("run").code == 0
    remote = only_snapshot(lab.remote_dir)
    out = tmp_path / "out" / "snap.db"
    out.parent.mkdir()
    result = cli("fetch", remote.name[:22], "--out", str(out), "--from", "backup-host")
    assert result.code == 0, result.stderr
    assert remote.name.endswith(".zst")  # the target's default stored form, decoded
    assert out.read_bytes() == only_snapshot(lab.snapshot_dir).read_bytes()
    assert out.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in out.parent.iterdir()) == ["snap.db"]  # no temporary left
    restore_snapshot(out, tmp_path / "restored")  # etcdctl accepts it, hash checked


def test_fetch_unzips_a_compressed_snapshot(lab: Lab, cli: Cli, tmp_path: Path) -> None:
    set_state(lab, compress_default=True)
    assert cli("run").code == 0
    archive = only_snapshot(lab.remote_dir)
    assert archive.name.endswith(".zip")
    out = tmp_path / "plain"
    result = cli("fetch", archive.name, "--out", str(out))
    assert result.code == 0, result.stderr
    with zipfile.ZipFile(archive) as zipped:
        assert out.read_bytes() == zipped.read(archive.name.removesuffix(".zip"))
    assert check_file(out).size == out.stat().st_size


def test_fetch_never_overwrites_without_force(lab: Lab, cli: Cli, tmp_path: Path) -> None:
    assert cli("run").code == 0
    out = tmp_path / "existing"
    out.write_bytes(b"precious")
    refused = cli("fetch", "latest", "--out", str(out))
    assert refused.code == 2
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert out.read_bytes() == b"precious"
    forced = cli("fetch", "latest", "--out", str(out), "--force")
    assert forced.code == 0, forced.stderr
    assert out.read_bytes() == only_snapshot(lab.snapshot_dir).read_bytes()


def test_a_corrupted_copy_is_refused_and_nothing_written(
    lab: Lab, cli: Cli, tmp_path: Path
) -> None:
    assert cli("run").code == 0
    remote = only_snapshot(lab.remote_dir)
    data = bytearray(remote.read_bytes())
    data[-40] ^= 0x01
    remote.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = cli("fetch", remote.name, "--out", str(out_dir / "snap"), "--from", "backup-host")
    assert result.code == 1
    assert "does not verify" in result.stderr and "backup-host" in result.stderr
    assert list(out_dir.iterdir()) == []


def test_unknown_name_lists_what_exists(lab: Lab, cli: Cli, tmp_path: Path) -> None:
    assert cli("run").code == 0
    name = only_snapshot(lab.snapshot_dir).name
    result = cli("fetch", "nope", "--out", str(tmp_path / "x"))
    assert result.code == 2
    assert "no snapshot named 'nope'" in result.stderr and name in result.stderr
    assert not (tmp_path / "x").exists()
