"""`restore` and `fetch` from the backup host: the listing, the manifest, the copy and the
restore bundle over one SSH connection (one handshake, one login in the host's log), not one
each; the copy is still the verified one."""

from __future__ import annotations

from pathlib import Path

from k3s_backup.lab.lab import Lab
from tests.commands import test_fetch
from tests.commands.test_restore import Cli, change_keys, write_keys

cli = test_fetch.cli  # the fixture: the CLI on a config of the lab's


def logins(lab: Lab) -> int:
    """Logins the backup host's sshd accepted so far (LogLevel VERBOSE logs each)."""
    return lab.sshd.log_path.read_text(errors="replace").count("Accepted publickey")


def test_restore_from_the_backup_host_logs_in_once(lab: Lab, cli: Cli) -> None:
    at_backup = write_keys(lab)
    assert cli("run").code == 0
    change_keys(lab)
    before = logins(lab)
    result = cli("restore", "latest", "--from", "backup-host", "--yes")
    assert result.code == 0, result.stderr
    assert lab.etcd.get_all() == at_backup
    assert "Verified" in result.stdout
    assert logins(lab) - before == 1


def test_fetch_from_the_backup_host_logs_in_once(lab: Lab, cli: Cli, tmp_path: Path) -> None:
    assert cli("run").code == 0
    before = logins(lab)
    out = tmp_path / "snapshot"
    result = cli("fetch", "latest", "--out", str(out), "--from", "backup-host")
    assert result.code == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert logins(lab) - before == 1
