"""The other nodes of the cluster during a restore, each reached through an SSH session
(ssh/session.py: the node's key, strict known_hosts); commands are argument lists, each
argument quoted by the session, never pasted."""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path

from k3s_backup.config import NodeConfig
from k3s_backup.plumbing.closable import Closable
from k3s_backup.ssh.session import COMMAND_TIMEOUT, ExecResult, SshSession

CommandResult = ExecResult  # status, and stdout and stderr merged


class RemoteNode(Closable):
    """One node; `role` is "server" or "agent" (their K3s units are k3s and k3s-agent)."""

    def __init__(self, config: NodeConfig, role: str) -> None:
        self.name = f"{config.user}@{config.host}"
        self.session = SshSession.from_config(self.name, config)
        self.role = role
        self.data_dir = str(config.data_dir)

    @property
    def host(self) -> str:
        return self.session.host

    @property
    def user(self) -> str:
        return self.session.user

    @property
    def port(self) -> int:
        return self.session.port

    @property
    def identity_file(self) -> Path:
        return self.session.identity_file

    @property
    def known_hosts(self) -> Path:
        return self.session.known_hosts

    @property
    def unit(self) -> str:
        return "k3s" if self.role == "server" else "k3s-agent"

    @property
    def db_dir(self) -> str:
        return posixpath.join(self.data_dir, "server", "db")

    def run(self, argv: list[str]) -> CommandResult:
        return self.session.exec(argv, COMMAND_TIMEOUT)

    def close(self) -> None:
        self.session.close()

    def stop_command(self) -> list[str]:
        return ["systemctl", "stop", self.unit]

    def start_command(self) -> list[str]:
        return ["systemctl", "start", self.unit]

    def move_db_command(self, stamp: str) -> list[str]:
        return ["mv", "--", self.db_dir, f"{self.db_dir}.bak-{stamp}"]


def select_nodes(configured: list[NodeConfig], hosts: tuple[str, ...] | None) -> list[NodeConfig]:
    """The configured nodes, or the hosts named on the command line, each with the SSH settings
    of the configured entry for that host if there is one, else the defaults."""
    if hosts is None:
        return configured
    by_host = {node.host: node for node in configured}
    return [by_host.get(host) or NodeConfig(host=host) for host in hosts]


def ssh_command(node: RemoteNode, argv: list[str]) -> str:
    """The `ssh` line that runs `argv` on `node` with the same key and known_hosts (named when
    not ssh's defaults), quoted once for the local shell and once for the remote one (ssh
    passes the command to the remote shell as one string)."""
    defaults = NodeConfig(host=node.host)
    options = [f"-p {node.port}"]
    if node.identity_file is not None and node.identity_file != defaults.identity_file:
        options.append(f"-i {shlex.quote(str(node.identity_file))}")
    if node.known_hosts != defaults.known_hosts:
        options.append(f"-o UserKnownHostsFile={shlex.quote(str(node.known_hosts))}")
    command = shlex.quote(shlex.join(argv))
    return f"ssh {' '.join(options)} {shlex.quote(f'{node.user}@{node.host}')} {command}"
