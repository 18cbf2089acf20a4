"""A target `path` that is wrong (`var/backup` for `var/backups`, a disk not mounted) is an
error naming the path and the fix, never a new tree that later commands find empty: only
`setup` creates a target's directory. An existing, empty directory is fine."""

from __future__ import annotations

from pathlib import Path

import pytest

from k3s_backup.lab.lab import Lab
from tests.commands.test_setup import authorize, setup
from tests.support.faults import Clock, cli, ours, snapshots

KINDS = ["ssh", "local"]


def place(lab: Lab, tmp_path: Path, kind: str, directory: str) -> tuple[dict[str, object], Path]:
    """A target of `kind` whose path is `directory` in a parent that exists."""
    if kind == "ssh":
        path = lab.root / "backup-host" / directory
        return lab.ssh_target(path=path), path
    parent = tmp_path / "usb"
    parent.mkdir(exist_ok=True)
    return {
        "name": "usb",
        "type": "local",
        "path": parent / directory,
        "keep": 7,
    }, parent / directory


def expected(lab: Lab, kind: str, path: Path) -> str:
    """The message, after the target's name (which each command puts in its own words)."""
    if kind == "ssh":
        return (
            f"{path} does not exist on {lab.sshd.host}; check `path` in the config,"
            " or run `k3s-backup setup` to create it"
        )
    return (
        f"{path} does not exist; check `path` in the config (is the disk mounted?), or"
        f" create it: `mkdir -m 700 {path}`"
    )


def contents(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize("kind", KINDS)
def test_run_to_a_missing_directory_fails_that_target_and_creates_nothing(
    lab: Lab, tmp_path: Path, kind: str
) -> None:
    target, wrong = place(lab, tmp_path, kind, "k3s-etc")  # the configured one is k3s-etcd
    config = lab.write_config(tmp_path / "c.toml", targets=[target])
    before = contents(wrong)
    result = cli(lab, config, Clock(), "run")
    assert result.code == 3, result.stderr  # partial: the snapshot is kept on this node
    assert expected(lab, kind, wrong) in result.stderr
    assert "Backup complete" not in result.stdout + result.stderr
    assert not wrong.exists() and contents(wrong) == before
    assert len(ours(lab.snapshot_dir)) == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["list", "verify"])
def test_list_and_verify_of_a_missing_directory_fail_and_create_nothing(
    lab: Lab, tmp_path: Path, kind: str, command: str
) -> None:
    target, wrong = place(lab, tmp_path, kind, "k3s-etc")
    config = lab.write_config(tmp_path / "c.toml", targets=[target])
    before = contents(wrong)
    result = cli(lab, config, Clock(), command)
    assert result.code == 1, result.stdout + result.stderr
    assert expected(lab, kind, wrong) in result.stderr
    name = target["name"]
    assert f"{name}: {name}:" not in result.stderr  # the target named once
    assert not wrong.exists() and contents(wrong) == before


@pytest.mark.parametrize("kind", KINDS)
def test_an_existing_empty_directory_is_fine(lab: Lab, tmp_path: Path, kind: str) -> None:
    target, directory = place(lab, tmp_path, kind, "empty")
    directory.mkdir(mode=0o700)
    config = lab.write_config(tmp_path / "c.toml", targets=[target])
    assert cli(lab, config, Clock(), "list").code == 0
    assert cli(lab, config, Clock(), "verify").code == 0
    result = cli(lab, config, Clock(), "run")
    assert result.code == 0, result.stderr
    assert snapshots(directory) == ours(lab.snapshot_dir)


def test_setup_creates_the_remote_directory_0700_and_backs_up_into_it(
    lab: Lab, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    config = root / "etc" / "k3s-backup" / "config.toml"
    config.parent.mkdir(parents=True)
    lab.write_config(config, targets=None)
    authorize(lab, root)
    new = lab.root / "backup-host" / "new" / "k3s-etcd"
    done = setup(lab, root, "--path", str(new))
    assert done.code == 0, done.stderr
    assert f"{new} created (0700)" in done.stdout
    assert new.stat().st_mode & 0o777 == 0o700 and new.parent.stat().st_mode & 0o777 == 0o700
    assert snapshots(new) == ours(lab.snapshot_dir)
