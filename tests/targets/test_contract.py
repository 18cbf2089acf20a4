"""One contract every backend honours (restic-style): run against local and SSH targets."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3s_backup.config import LocalTargetConfig, SshTargetConfig
from k3s_backup.errors import TargetError
from k3s_backup.targets.base import Target
from k3s_backup.targets.factory import open_target

CLUSTER = "k3s-lab"
NAME = "k3s-lab-20261123-020000-k3s-05-1795399200"


@pytest.fixture(params=["local", "ssh"])
def target_and_dir(request, tmp_path) -> Iterator[tuple[Target, Path]]:
    if request.param == "local":
        directory = tmp_path / "usb" / "k3s-etcd"
        config: LocalTargetConfig | SshTargetConfig = LocalTargetConfig(
            name="usb", type="local", path=directory
        )
    else:
        lab = request.getfixturevalue("lab")
        directory = lab.remote_dir
        config = SshTargetConfig(
            name="backup-host",
            type="ssh",
            host="127.0.0.1",
            user=lab.sshd.user,
            port=lab.sshd.port,
            path=directory,
            identity_file=lab.sshd.client_key,
            known_hosts=lab.known_hosts,
        )
    with open_target(config, CLUSTER) as target:
        yield target, directory


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_get_roundtrip_is_byte_exact_and_private(target_and_dir):
    target, directory = target_and_dir
    data = bytes(range(256)) * 5000  # several chunks
    target.put(NAME, io.BytesIO(data), sha(data))
    out = io.BytesIO()
    target.get(NAME, out)
    assert out.getvalue() == data
    assert target.sha256(NAME) == sha(data)
    stat = target.stat(NAME)
    assert stat is not None and stat.size == len(data)
    assert (directory / NAME).stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700


def test_put_that_does_not_verify_leaves_nothing(target_and_dir):
    target, directory = target_and_dir
    with pytest.raises(TargetError, match="does not verify"):
        target.put(NAME, io.BytesIO(b"payload"), sha(b"something else"))
    assert target.stat(NAME) is None
    assert sorted(p.name for p in directory.iterdir()) == []


def test_put_replaces_atomically(target_and_dir):
    target, _ = target_and_dir
    target.put(NAME, io.BytesIO(b"old"), sha(b"old"))
    target.put(NAME, io.BytesIO(b"new"), sha(b"new"))
    assert target.sha256(NAME) == sha(b"new")


def test_list_stat_delete(target_and_dir):
    target, directory = target_and_dir
    assert target.list() == []
    target.put(NAME, io.BytesIO(b"x"), sha(b"x"))
    (directory / "etcd-snapshot-k3s-05-1795399200").write_bytes(b"k3s's own")
    assert sorted(o.name for o in target.list()) == sorted(
        [NAME, "etcd-snapshot-k3s-05-1795399200"]
    )
    target.delete(NAME)
    target.delete(NAME)  # deleting what is gone is not an error
    assert target.stat(NAME) is None
    assert (directory / "etcd-snapshot-k3s-05-1795399200").read_bytes() == b"k3s's own"


@pytest.mark.parametrize(
    "foreign",
    ["etcd-snapshot-k3s-05-1795399200", "../../etc/passwd", "notes.txt", f"{NAME}; rm -rf /"],
)
def test_foreign_names_are_refused_before_any_operation(target_and_dir, foreign):
    target, directory = target_and_dir
    for operation in (
        lambda: target.put(foreign, io.BytesIO(b"x"), sha(b"x")),
        lambda: target.get(foreign, io.BytesIO()),
        lambda: target.delete(foreign),
        lambda: target.stat(foreign),
        lambda: target.sha256(foreign),
    ):
        with pytest.raises(TargetError, match="not a k3s-backup file name"):
            operation()
    assert not directory.exists() or list(directory.iterdir()) == []
