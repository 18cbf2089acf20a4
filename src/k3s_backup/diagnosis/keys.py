"""The two keys an SSH target needs before any connection: the node's private key (present,
loadable, 0600) and the backup host's key in known_hosts (known and unchanged). Setup checks the
same through the same functions (ssh/nodekeys.usable_key, ssh/hostkeys.check_host_key)."""

from __future__ import annotations

from k3s_backup.checks import FAIL, OK
from k3s_backup.config import SshTargetConfig
from k3s_backup.diagnosis.check import Check
from k3s_backup.errors import BackupError
from k3s_backup.ssh import nodekeys
from k3s_backup.ssh.hostkeys import HostKeyChanged, check_host_key, known_hosts_host, shown
from k3s_backup.ssh.keyfile import KeyFileError


def key(target: SshTargetConfig) -> Check:
    name, path = f"{target.name}: key", target.identity_file
    if not path.exists():
        return Check(name, FAIL, f"{path} does not exist", "k3s-backup setup")
    try:
        key_fingerprint = nodekeys.usable_key(path)
    except KeyFileError as exc:
        return Check(name, FAIL, exc.problem, exc.fix)
    return Check(name, OK, f"{path} ({key_fingerprint}), mode 0600")


def host_key(target: SshTargetConfig) -> Check:
    name = f"{target.name}: host key"
    host = known_hosts_host(target.host, target.port)
    try:
        offered, known = check_host_key(
            target.host, target.port, target.known_hosts, float(target.connect_timeout)
        )
    except HostKeyChanged as changed:
        return Check(name, FAIL, changed.problem, changed.fix)
    except BackupError as exc:
        return Check(name, FAIL, str(exc), f"check that sshd runs on {host}")
    if not known:
        return Check(
            name,
            FAIL,
            f"{host} offers {shown(offered)}, which is not in {target.known_hosts}",
            "k3s-backup setup (shows the fingerprint and asks before trusting it)",
        )
    return Check(name, OK, f"{shown(offered)} is in {target.known_hosts}")
