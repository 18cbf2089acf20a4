"""The other nodes of the cluster during a restore, reached over SSH like an SSH target.

The same connection code as targets/ssh.py (keys, strict known_hosts, the refusing host-key
policy); commands are argument lists, each argument quoted with shlex.quote, never pasted.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

import paramiko

from k3s_backup.config import NodeConfig
from k3s_backup.errors import TargetError
from k3s_backup.targets.ssh import CONNECTION_ERRORS, SshTarget

COMMAND_TIMEOUT = 10 * 60
NO_EXIT_STATUS = -1  # paramiko's exit status of a channel that closed without sending one


@dataclass(frozen=True)
class CommandResult:
    status: int
    output: str  # stdout and stderr, merged


class RemoteNode(SshTarget):
    """One node; `role` is "server" or "agent" (their K3s units are k3s and k3s-agent)."""

    def __init__(self, config: NodeConfig, role: str) -> None:
        super().__init__(
            name=f"{config.user}@{config.host}",
            host=config.host,
            user=config.user,
            port=config.port,
            path=str(config.data_dir),
            identity_file=config.identity_file,
            known_hosts=config.known_hosts,
            connect_timeout=float(config.connect_timeout),
        )
        self.role = role
        self.data_dir = str(config.data_dir)

    @property
    def unit(self) -> str:
        return "k3s" if self.role == "server" else "k3s-agent"

    @property
    def db_dir(self) -> str:
        return posixpath.join(self.data_dir, "server", "db")

    def run(self, argv: list[str]) -> CommandResult:
        self._connect()
        assert self._client is not None
        command = " ".join(shlex.quote(arg) for arg in argv)
        try:
            transport = self._client.get_transport()
            if transport is None:
                raise paramiko.SSHException("not connected")
            channel = transport.open_session(timeout=self.connect_timeout)
            channel.settimeout(COMMAND_TIMEOUT)
            channel.set_combine_stderr(True)  # one stream: no deadlock on a full stderr pipe
            channel.exec_command(command)
            output = channel.makefile("rb").read().decode(errors="replace")
            status = channel.recv_exit_status()
            channel.close()
        except CONNECTION_ERRORS as exc:
            raise TargetError(
                f"{self.name}: `{command}` failed: {exc}; whether it ran there is unknown"
            ) from None
        if status == NO_EXIT_STATUS:  # the channel closed without one: the link was lost
            raise TargetError(
                f"{self.name}: the SSH link was lost during `{command}`; whether it ran there"
                " is unknown"
            )
        return CommandResult(status, output)

    def stop_command(self) -> list[str]:
        return ["systemctl", "stop", self.unit]

    def start_command(self) -> list[str]:
        return ["systemctl", "start", self.unit]

    def move_db_command(self, stamp: str) -> list[str]:
        return ["mv", "--", self.db_dir, f"{self.db_dir}.bak-{stamp}"]
