"""The SSH target's transfer settings against the lab's real OpenSSH: AES-GCM is negotiated, and
writes are as large as sftp-server announces, with a copy of odd size still byte-exact."""

from __future__ import annotations

import hashlib
import io
import os

from k3s_backup.config import SshTargetConfig
from k3s_backup.targets.factory import open_target
from k3s_backup.targets.guard import OwnNamesOnly
from k3s_backup.targets.ssh import DEFAULT_WRITE_SIZE, MAX_WRITE_SIZE, SshTarget
from k3s_backup.testbed.lab import Lab

NAME = "k3s-lab-20261123-020000-k3s-05-1795399200"


def test_upload_uses_gcm_and_the_announced_write_size(lab: Lab) -> None:
    data = os.urandom(3 * MAX_WRITE_SIZE + 12345)  # several large requests and a short last one
    with open_target(SshTargetConfig.model_validate(lab.ssh_target()), "k3s-lab") as guarded:
        assert isinstance(guarded, OwnNamesOnly)
        target = guarded.inner
        assert isinstance(target, SshTarget)
        target.put(NAME, io.BytesIO(data), hashlib.sha256(data).hexdigest())
        assert target._client is not None
        transport = target._client.get_transport()
        assert transport is not None
        assert vars(transport)["remote_cipher"] == "aes128-gcm@openssh.com"  # not in the stubs
        assert target._write_size is not None
        assert DEFAULT_WRITE_SIZE < target._write_size <= MAX_WRITE_SIZE  # OpenSSH: 255 KiB
    assert (lab.remote_dir / NAME).read_bytes() == data
