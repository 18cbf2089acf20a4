"""After the disk died, in the default set-up (the node's key runs only `k3s-backup serve` on the
backup host): a replacement node with a new key runs setup, which prints the host's commands;
the operator runs them there as printed (a real root, useradd, the lab's sshd), the old node's
key revoked; the new node restores the lost cluster byte for byte, and backs it up again.

Real parts as in test_new_node.py (the sftp opt-out's journey), plus the account host-setup
makes; with a read-only key the new node restores but ships nothing until given append-only.
"""

from __future__ import annotations

import hashlib
import io
import shlex
from pathlib import Path

import pytest

from k3s_backup.cli import main
from k3s_backup.environment import Environment
from k3s_backup.lab.lab import Lab
from tests.commands.test_new_node import (
    NEW_UID,
    OLD_UID,
    Node,
    install_cluster,
    k3s_settings,
    lose_the_disk,
    new_config,
    new_install,
)
from tests.commands.test_restore import Clock
from tests.commands.test_setup import host_fingerprint
from tests.support.cli_runner import Result, invoke
from tests.support.service_host import ServiceHost, service_host


def copies(host: ServiceHost) -> dict[str, str]:
    """Every file in the backup directory with its SHA-256, read as root."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in host.directory.iterdir()}


def as_printed(host: ServiceHost, printed: str, mode: str | None = None) -> None:
    """The operator runs setup's host-setup line on the backup host, as root (plus where this
    test keeps the account's home, the program and the system files)."""
    words = shlex.split(printed.removeprefix("2. "))
    assert words[:2] == ["k3s-backup", "host-setup"]
    if mode is not None:  # the operator's choice for a node that only restores
        words[words.index("--mode") + 1] = mode
    extra = ["--home", str(host.home), "--program", str(host.base / "bin" / "k3s-backup")]
    extra += ["--root", str(host.etc_root)]
    out, err = io.StringIO(), io.StringIO()
    code = main([*words[1:], *extra], Environment(stdout=out, stderr=err, environ=host.lab.env()))
    assert code == 0, err.getvalue()


def setup(lab: Lab, root: Path, host: ServiceHost, *extra: str) -> Result:
    args = ["setup", "--root", str(root), "--host", lab.sshd.host, "--port", str(lab.sshd.port)]
    args += ["--user", host.user, "--path", str(host.directory), *extra]
    return invoke(args, environ=lab.env())


def old_node_backs_up(lab: Lab, host: ServiceHost, tmp_path: Path) -> Node:
    host.host_setup("append-only")
    config = lab.write_config(
        tmp_path / "old-config.toml",
        targets=[host.target("append-only")],
        k3s=k3s_settings(lab),
        restore={"ready_timeout": 60},
    )
    old = Node(lab, config, Clock())
    install_cluster(lab, OLD_UID, "k3s-05")
    lab.etcd.put("/registry/secrets/default/db", b"s3cr3t")
    for night in range(3):
        lab.etcd.put("/registry/configmaps/default/app", f"v{night}".encode())
        result = old("run")
        assert result.code == 0, result.stderr
    return old


def lose_the_node(lab: Lab, host: ServiceHost, old: Node, paper: Path) -> None:
    """The old node is gone as in test_new_node.py; on the backup host its key's line is
    removed, as docs/restore.md says."""
    old_key = lab.sshd.client_key_pub.read_text().split()[1]
    lose_the_disk(lab, old, paper)
    keys = host.home / ".ssh" / "authorized_keys"
    kept = [line for line in keys.read_text().splitlines() if old_key not in line.split()]
    keys.write_text("".join(line + "\n" for line in kept))


@pytest.mark.parametrize("mode", ["append-only", "read-only"])
def test_a_replacement_node_gets_access_with_the_printed_commands_and_restores(
    lab: Lab, tmp_path: Path, mode: str
) -> None:
    with service_host(lab) as host:
        old = old_node_backs_up(lab, host, tmp_path)
        at_backup = lab.etcd.get_all()
        shipped = copies(host)
        paper = tmp_path / "kept-on-paper.txt"
        lose_the_node(lab, host, old, paper)
        new_install(lab, "k3s-07")

        root, config = new_config(lab, tmp_path, "k3s-07")
        first = setup(lab, root, host, "--accept-host-key", host_fingerprint(lab))
        assert first.code == 1  # the new key is no key of the backup host yet
        [printed] = [ln.strip() for ln in first.stdout.splitlines() if "host-setup" in ln]
        public = (root / "root" / ".ssh" / "id_ed25519.pub").read_text().split()[1]
        assert public in printed and "--mode append-only" in printed
        as_printed(host, printed, None if mode == "append-only" else mode)
        [line] = (host.home / ".ssh" / "authorized_keys").read_text().splitlines()
        assert public in line.split() and f"--{mode}" in line  # the old key is gone

        done = setup(lab, root, host, "--recovery-key", str(paper))
        assert done.code == 0, done.stderr + done.stdout
        assert "not taken" in done.stdout and f"cluster {OLD_UID}" in done.stdout
        assert copies(host) == shipped  # nothing shipped over the lost cluster's copies

        node = Node(lab, config, Clock())
        plan = node("restore", "--dry-run")
        assert plan.code == 0, plan.stderr
        assert f"this node now holds:    cluster {NEW_UID}" in plan.stdout
        result = node("restore", "--yes")
        assert result.code == 0, result.stderr
        assert lab.etcd.get_all() == at_backup  # every key, every value, byte for byte
        assert copies(host) == shipped

        after = node("run")
        if mode == "read-only":  # a restore key ships nothing: give it append-only
            assert after.code == 3 and "may only read" in after.stderr + after.stdout  # partial
            assert copies(host) == shipped
            as_printed(host, printed)
            after = node("run")
        assert after.code == 0, after.stderr
        assert "another cluster" not in after.stderr
        new = set(copies(host)) - set(shipped)
        assert [n for n in new if n.endswith(".zst")] and all("-k3s-07-" in n for n in new)
