"""The SSH target's transfer settings against the lab's real OpenSSH: AES-GCM is negotiated,
reads and writes are as large as sftp-server announces, a copy of odd size still byte-exact."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable

import paramiko
import pytest

from k3s_backup.config import SshTargetConfig
from k3s_backup.lab.lab import Lab
from k3s_backup.ssh.paramiko_quirks import (
    DEFAULT_REQUEST_SIZE,
    MAX_REQUEST_SIZE,
)
from k3s_backup.targets.factory import open_target
from k3s_backup.targets.guard import OwnNamesOnly
from k3s_backup.targets.ssh import SshTarget

NAME = "k3s-lab-20261123-020000-k3s-05-1795399200"


def test_upload_uses_gcm_and_the_announced_write_size(lab: Lab) -> None:
    data = os.urandom(3 * MAX_REQUEST_SIZE + 12345)  # several large requests and a short last one
    with open_target(SshTargetConfig.model_validate(lab.ssh_target()), "k3s-lab") as guarded:
        assert isinstance(guarded, OwnNamesOnly)
        target = guarded.inner
        assert isinstance(target, SshTarget)
        target.put(NAME, io.BytesIO(data), hashlib.sha256(data).hexdigest())
        assert target.session._client is not None
        transport = target.session._client.get_transport()
        assert transport is not None
        assert vars(transport)["remote_cipher"] == "aes128-gcm@openssh.com"  # not in the stubs
        assert target._sizes is not None
        assert DEFAULT_REQUEST_SIZE < target._sizes.write <= MAX_REQUEST_SIZE  # OpenSSH: 255 KiB
    assert (lab.remote_dir / NAME).read_bytes() == data


def test_an_upload_temporary_is_created_0600_by_the_open_itself(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created with the server's umask (0644) and chmodded after, the temporary could be opened
    by anyone in between, who then reads every byte written to it: the mode must be in the
    SFTP open. The server's side of the file is looked at (the backup host is this machine) at
    each chmod and each write the client sends: it is 0600 every time."""
    seen: list[int] = []

    def server_side_mode() -> None:
        temps = [p for p in lab.remote_dir.iterdir() if ".partial-" in p.name]
        seen.extend(temp.stat().st_mode & 0o777 for temp in temps)  # none: the dir's chmod

    def spy(original: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            server_side_mode()
            return original(*args, **kwargs)

        return call

    monkeypatch.setattr(paramiko.SFTPClient, "chmod", spy(paramiko.SFTPClient.chmod))
    monkeypatch.setattr(paramiko.SFTPFile, "write", spy(paramiko.SFTPFile.write))
    data = os.urandom(100_000)
    with open_target(SshTargetConfig.model_validate(lab.ssh_target()), "k3s-lab") as target:
        target.put(NAME, io.BytesIO(data), hashlib.sha256(data).hexdigest())
    assert (lab.remote_dir / NAME).read_bytes() == data
    assert seen and set(seen) == {0o600}, [oct(mode) for mode in seen]


def test_download_prefetches_in_the_announced_read_size(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads as large as sftp-server takes (255 KiB, not paramiko's 32 KiB), a copy of odd size
    still byte-exact."""
    data = os.urandom(5 * MAX_REQUEST_SIZE + 4321)
    (lab.remote_dir / NAME).write_bytes(data)
    asked: list[int] = []  # each prefetch's request size
    original = paramiko.SFTPFile.prefetch

    def prefetch(file: paramiko.SFTPFile, size: int | None = None, most: int | None = None) -> None:
        asked.append(file.MAX_REQUEST_SIZE)
        original(file, size, most)

    monkeypatch.setattr(paramiko.SFTPFile, "prefetch", prefetch)
    received = io.BytesIO()
    with open_target(SshTargetConfig.model_validate(lab.ssh_target()), "k3s-lab") as target:
        target.get(NAME, received, len(data))
    assert received.getvalue() == data
    [size] = asked
    assert DEFAULT_REQUEST_SIZE < size <= MAX_REQUEST_SIZE  # OpenSSH: 255 KiB
