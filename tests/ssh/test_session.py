"""The SSH session against the lab's real OpenSSH: a host key we do not know, or that changed,
is refused (nothing trusted, one message with both fingerprints and the fix); a refused key
says which file to authorize; a command's arguments reach the host as they were given."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from k3s_backup.errors import HostKeyError
from k3s_backup.lab.lab import Lab
from k3s_backup.ssh.errors import KeyRefusedError
from k3s_backup.ssh.session import SshSession


def session(lab: Lab, known_hosts: Path | None = None) -> SshSession:
    s = lab.sshd
    hosts = known_hosts or lab.known_hosts
    return SshSession("backup-host", s.host, s.user, s.port, s.client_key, hosts, 10.0)


def host_fingerprint(lab: Lab) -> str:
    """What OpenSSH itself says of the lab's host key (`ssh-keygen -lf`)."""
    done = subprocess.run(
        ["ssh-keygen", "-lf", str(lab.sshd.host_key_pub)], capture_output=True, text=True
    )
    return done.stdout.split()[1]


def test_an_unknown_host_key_is_refused_with_the_command_to_check_and_trust_it(
    lab: Lab, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"  # none yet: every host is unknown
    with session(lab, known_hosts) as unknown, pytest.raises(HostKeyError) as refused:
        unknown.connect()
    message = str(refused.value)
    where = f"[{lab.sshd.host}]:{lab.sshd.port}"
    assert message.startswith(f"backup-host: the host key of {where} is not in {known_hosts}")
    assert f"ssh-ed25519 {host_fingerprint(lab)}" in message
    trust = f"ssh-keyscan -p {lab.sshd.port} -t ssh-ed25519 {lab.sshd.host} >> {known_hosts}"
    assert trust in message
    assert not known_hosts.exists() and not unknown.alive()


def test_a_changed_host_key_is_refused_once_with_both_fingerprints(lab: Lab) -> None:
    before, old = lab.known_hosts.read_bytes(), host_fingerprint(lab)
    lab.sshd.regenerate_host_key()  # as after a reinstall, or an attacker in between
    new = host_fingerprint(lab)
    with session(lab) as changed, pytest.raises(HostKeyError) as refused:
        changed.connect()
    message = str(refused.value)
    assert message.count("CHANGED") == 1 and message.count("refusing to connect") == 1
    assert old in message and new in message and old != new
    assert f"ssh-keygen -R '[{lab.sshd.host}]:{lab.sshd.port}' -f {lab.known_hosts}" in message
    assert lab.known_hosts.read_bytes() == before  # nothing trusted
    assert not changed.alive()


def test_a_refused_key_names_the_file_to_authorize(lab: Lab) -> None:
    lab.sshd.authorized_keys.write_text("")  # the host knows no key of ours
    with session(lab) as refused_session, pytest.raises(KeyRefusedError) as refused:
        refused_session.connect()
    key = lab.sshd.client_key
    assert str(refused.value) == (
        f"backup-host: {lab.sshd.user}@{lab.sshd.host} refused the key {key}; add {key}.pub to"
        f" ~{lab.sshd.user}/.ssh/authorized_keys there"
    )


@pytest.mark.parametrize(
    "argument", ["two words", "$(touch pwned)", "a'quote", "; touch pwned", "*", "-n", ""]
)
def test_exec_passes_each_argument_as_given_and_runs_nothing_else(
    lab: Lab, tmp_path: Path, argument: str
) -> None:
    with session(lab) as ssh:
        result = ssh.exec(["printf", "%s|", argument, "end"], timeout=30)
    assert (result.status, result.output) == (0, f"{argument}|end|")
    assert not (Path.home() / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_exec_reports_the_exit_status_and_merged_output(lab: Lab) -> None:
    with session(lab) as ssh:
        result = ssh.exec(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=30)
    assert result.status == 7
    assert sorted(result.output.split()) == ["err", "out"]


def test_small_packets_leave_at_once(lab: Lab) -> None:
    """TCP_NODELAY: with Nagle's algorithm on, each request and reply of the service protocol
    waited for the peer's delayed ACK (45 ms a round trip on loopback instead of 0.5 ms)."""
    with session(lab) as ssh:
        channel = ssh.sftp().get_channel()
        assert channel is not None
        sock = channel.get_transport().sock
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
