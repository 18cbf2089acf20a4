"""The SSH target on a connection the network dropped, against the lab's real OpenSSH: every
verb fails as a TargetError (exit 3 for a run), never as paramiko's EOFError, which click would
report as "Aborted." with exit 1, nor as a thread's traceback; closing it is not an error."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest

from k3s_backup.config import SshTargetConfig
from k3s_backup.errors import TargetError
from k3s_backup.lab.lab import Lab
from k3s_backup.ssh.paramiko_quirks import prefetch_quietly
from k3s_backup.targets.factory import open_target
from k3s_backup.targets.guard import OwnNamesOnly
from k3s_backup.targets.ssh import SshTarget
from tests.support.tcp_proxy import CuttingProxy

NAME = "k3s-lab-20261123-020000-k3s-05-1795399200"


@pytest.fixture
def connected(lab: Lab) -> Iterator[tuple[SshTarget, CuttingProxy]]:
    """A target connected to the lab's sshd through a proxy that can stall the link."""
    proxy = CuttingProxy(("127.0.0.1", lab.sshd.port)).start()
    lab.known_hosts.write_text(lab.sshd.known_hosts_line(port=proxy.port) + "\n")
    config = SshTargetConfig.model_validate(lab.ssh_target(port=proxy.port))
    guarded = open_target(config, "k3s-lab")
    assert isinstance(guarded, OwnNamesOnly) and isinstance(guarded.inner, SshTarget)
    target = guarded.inner
    target.connect()
    yield target, proxy
    target.close()
    proxy.stop()


def drop(target: SshTarget, proxy: CuttingProxy) -> None:
    """The socket can no longer send, on a stalled link: the server never hears of it, so
    paramiko's reader thread still takes the connection for alive (the moment, in a real cut,
    at which paramiko's sender raises EOFError)."""
    assert target.session._client is not None
    transport = target.session._client.get_transport()
    assert transport is not None
    proxy.freeze()
    transport.sock.shutdown(socket.SHUT_WR)


@pytest.fixture
def dropped(connected: tuple[SshTarget, CuttingProxy]) -> SshTarget:
    drop(*connected)
    return connected[0]


def test_closing_a_dropped_connection_is_not_an_error(dropped: SshTarget) -> None:
    dropped.close()
    assert dropped.session._client is None and dropped.session._sftp is None


def test_listing_over_a_dropped_connection_is_a_target_error(dropped: SshTarget) -> None:
    with pytest.raises(TargetError, match="cannot list"):
        dropped.list()


def test_upload_over_a_dropped_connection_is_a_target_error(lab: Lab, dropped: SshTarget) -> None:
    with pytest.raises(TargetError, match=f"cannot upload {NAME}"):
        dropped.put(NAME, io.BytesIO(b"x" * 100_000), "0" * 64)
    assert not (lab.remote_dir / NAME).exists()


def test_a_download_on_a_dropped_link_leaves_no_thread_traceback(
    lab: Lab, connected: tuple[SshTarget, CuttingProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """paramiko sends a download's read requests from a prefetch thread; its EOFError on a dead
    link must not reach Python's thread hook (a traceback on stderr, at 2 a.m., in a restore)
    while our own read turns the failure into a clear error."""
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda hook: died.append(hook.exc_value))
    target, proxy = connected
    lab.remote_dir.mkdir(parents=True, exist_ok=True)
    (lab.remote_dir / NAME).write_bytes(b"x" * 1_000_000)
    assert target.session._sftp is not None
    remote = target.session._sftp.open(str(lab.remote_dir / NAME), "rb")  # opened before the drop
    attributes = remote.stat()  # prefetch asks for the size first: answered before the drop
    monkeypatch.setattr(remote, "stat", lambda: attributes)
    drop(target, proxy)
    prefetch_quietly(remote)
    for thread in threading.enumerate():
        if thread.name.endswith("(_prefetch_thread)"):
            thread.join(timeout=10)
    assert died == []
