"""`k3s-backup doctor`: every check seen passing and failing, on the lab's real parts."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pytest

from k3s_backup.lab.fake_k3s import FakeK3sState
from k3s_backup.lab.fake_systemctl import set_unit_active
from k3s_backup.lab.s3 import ACCESS_KEY, SECRET_KEY
from k3s_backup.policy.schedule import parse
from k3s_backup.scheduling import SystemPaths, cron_file, program_path, write_file
from tests.support.cli_runner import invoke
from tests.support.filesystem import unwritable
from tests.support.service_host import service_host

ALL_CHECKS = [
    "config",
    "schedule",
    "scheduler",
    "k3s",
    "datastore",
    "snapshot dir",
    "backup-host: key",
    "backup-host: host key",
    "backup-host: restriction",
    "backup-host: connection",
    "backup-host: directory",
    "backup-host: free space",
    "last run",
    "log",
]


class Node:
    def __init__(self, lab, root: Path) -> None:
        self.lab = lab
        self.paths = SystemPaths(root)
        self.k3s_config_dir = root / "etc" / "rancher" / "k3s"

    def configure(self, target: dict[str, object] | None = None, **overrides: object) -> None:
        self.paths.config.parent.mkdir(parents=True, exist_ok=True)
        k3s = {
            "bin": self.lab.bin_dir / "k3s",
            "data_dir": self.lab.data_dir,
            "config_dir": self.k3s_config_dir,
        }
        settings: dict[str, object] = {
            "k3s": k3s,
            "targets": [self.lab.ssh_target(**(target or {}))],
        }
        settings.update(overrides)
        self.lab.write_config(self.paths.config, **settings)

    def install_cron(self) -> None:
        log = self.lab.root / "k3s-backup.log"
        text = cron_file(parse("0 2 * * *"), program_path(), self.paths.config, log)
        write_file(self.paths.cron, text, 0o644)

    def run(self) -> int:
        return invoke(["--config", str(self.paths.config), "run"], environ=self.lab.env()).code

    def doctor(self, hours_later: float = 1) -> tuple[int, dict[str, dict[str, str]]]:
        now = datetime.now().astimezone() + timedelta(hours=hours_later)
        result = invoke(
            ["doctor", "--root", str(self.paths.root), "--json"],
            environ=self.lab.env(),
            now=lambda: now,
        )
        data = json.loads(result.stdout)
        assert data["ok"] is (result.code == 0)
        return result.code, {c["name"]: c for c in data["checks"]}


@pytest.fixture
def node(lab, tmp_path) -> Node:
    node = Node(lab, tmp_path / "root")
    node.configure()
    node.install_cron()
    assert node.run() == 0
    return node


def test_a_healthy_node_passes_every_check(node):
    code, checks = node.doctor()
    assert code == 0
    assert list(checks) == ALL_CHECKS
    # the lab's target is the guide's root SFTP: the documented opt-out, warned about
    expected = dict.fromkeys(ALL_CHECKS, "OK") | {"backup-host: restriction": "WARN"}
    assert {name: c["status"] for name, c in checks.items()} == expected
    assert 'mode = "sftp"' in checks["backup-host: restriction"]["saw"]
    assert "source k3s (auto:" in checks["datastore"]["saw"]
    assert "embedded etcd" in checks["datastore"]["saw"]
    text = invoke(["doctor", "--root", str(node.paths.root)], environ=node.lab.env())
    assert text.code == 0
    assert "OK   backup-host: connection:" in text.stdout


def test_an_invalid_config_fails(node):
    node.paths.config.write_text("keep_local = 0\n")
    code, checks = node.doctor()
    assert code == 1
    assert checks["config"]["status"] == "FAIL"
    assert "keep_local" in checks["config"]["saw"]


def test_schedule_missing_or_broken_and_services_inactive_fail(node, lab):
    set_unit_active(lab.state_file, "cron", False)
    state = FakeK3sState.load(lab.state_file)
    state.service_active = False
    state.save(lab.state_file)
    node.paths.cron.unlink()
    code, checks = node.doctor()
    assert code == 1
    assert checks["schedule"]["status"] == "FAIL"
    assert checks["schedule"]["fix"] == "k3s-backup setup"
    assert checks["scheduler"] == {
        "name": "scheduler",
        "status": "FAIL",
        "saw": "cron is inactive",
        "fix": "systemctl enable --now cron",
    }
    assert checks["k3s"]["status"] == "FAIL" and "inactive" in checks["k3s"]["saw"]
    text = node.paths.cron.parent / "k3s-backup"
    node.install_cron()
    text.write_text(text.read_text().replace("0 2 * * * root", "0 2 * * 9 root"))
    _, checks = node.doctor()
    assert checks["schedule"]["status"] == "FAIL"
    assert "bad day-of-week" in checks["schedule"]["saw"]


def test_sqlite_and_external_datastores_are_named(node, tmp_path):
    data_dir = tmp_path / "sqlite-k3s"
    (data_dir / "server" / "db").mkdir(parents=True)
    (data_dir / "server" / "db" / "state.db").write_bytes(b"SQLite format 3\0")
    node.configure(
        source="k3s",
        k3s={"bin": node.lab.bin_dir / "k3s", "data_dir": data_dir, "config_dir": tmp_path},
    )
    _, checks = node.doctor()
    assert checks["datastore"]["status"] == "FAIL"
    assert "SQLite" in checks["datastore"]["saw"]
    assert 'source = "sqlite"' in checks["datastore"]["fix"]

    node.configure()
    node.k3s_config_dir.mkdir(parents=True)
    (node.k3s_config_dir / "config.yaml").write_text(
        'datastore-endpoint: "postgres://k3s:secret@db:5432/k3s"\n'
    )
    _, checks = node.doctor()
    assert checks["datastore"]["status"] == "FAIL"
    assert "external datastore" in checks["datastore"]["saw"]


def test_snapshot_dir_missing_or_too_small_fails(node, tmp_path):
    node.configure(keep_local=10**12)
    _, checks = node.doctor()
    assert checks["snapshot dir"]["status"] == "FAIL"
    assert "keep_local" in checks["snapshot dir"]["saw"]
    node.configure(snapshot_dir=tmp_path / "nowhere")
    _, checks = node.doctor()
    assert checks["snapshot dir"]["status"] == "FAIL"
    assert checks["snapshot dir"]["fix"] == f"mkdir -p -m 700 {tmp_path / 'nowhere'}"


def test_key_missing_or_readable_by_others_fails(node, lab, tmp_path):
    key = tmp_path / "id_ed25519"
    shutil.copy(lab.sshd.client_key, key)
    key.chmod(0o644)
    node.configure(target={"identity_file": key})
    _, checks = node.doctor()
    assert checks["backup-host: key"]["status"] == "FAIL"
    assert checks["backup-host: key"]["fix"] == f"chmod 600 {key}"
    key.unlink()
    _, checks = node.doctor()
    assert "does not exist" in checks["backup-host: key"]["saw"]


def test_a_key_path_that_is_a_directory_fails_with_the_setup_command(node, lab, tmp_path):
    ssh_dir = tmp_path / "ssh"
    ssh_dir.mkdir()
    shutil.copy(lab.sshd.client_key, ssh_dir / "id_ed25519")
    node.configure(target={"identity_file": ssh_dir})
    code, checks = node.doctor()
    assert code == 1
    assert checks["backup-host: key"]["status"] == "FAIL"
    assert checks["backup-host: key"]["saw"] == f"SSH key {ssh_dir} is a directory, not a key file"
    assert checks["backup-host: key"]["fix"] == (
        "set identity_file to the private key file inside it:"
        f" `k3s-backup setup --identity-file {ssh_dir / 'id_ed25519'}`"
    )


def test_unknown_and_changed_host_keys_fail(node, lab):
    lab.known_hosts.write_text("")
    _, checks = node.doctor()
    assert checks["backup-host: host key"]["status"] == "FAIL"
    assert "not in" in checks["backup-host: host key"]["saw"]
    assert "backup-host: connection" not in checks  # never connect to an unverified host
    lab.sshd.write_known_hosts(lab.known_hosts)
    lab.sshd.regenerate_host_key()
    _, checks = node.doctor()
    assert "CHANGED" in checks["backup-host: host key"]["saw"]
    assert "ssh-keygen -R" in checks["backup-host: host key"]["fix"]


def test_a_refused_key_fails_the_connection(node, lab):
    lab.sshd.authorized_keys.write_text("")
    _, checks = node.doctor()
    assert checks["backup-host: host key"]["status"] == "OK"
    assert checks["backup-host: connection"]["status"] == "FAIL"
    assert "refused the key" in checks["backup-host: connection"]["saw"]
    public = lab.sshd.client_key_pub.read_text().strip()
    assert public in checks["backup-host: connection"]["fix"]


def test_remote_dir_missing_unwritable_or_full_fails(node, lab, tmp_path):
    with unwritable(lab.remote_dir):
        _, checks = node.doctor()
    assert checks["backup-host: directory"]["status"] == "FAIL"
    assert "not writable" in checks["backup-host: directory"]["saw"]
    assert [p for p in lab.remote_dir.iterdir() if "probe" in p.name] == []
    node.configure(target={"keep": 10**12})
    _, checks = node.doctor()
    assert checks["backup-host: free space"]["status"] == "FAIL"
    absent = tmp_path / "absent"
    node.configure(target={"path": absent})
    _, checks = node.doctor()
    assert checks["backup-host: directory"]["status"] == "FAIL"
    assert checks["backup-host: directory"]["saw"] == f"{absent} does not exist on {lab.sshd.host}"
    fix = checks["backup-host: directory"]["fix"]
    assert "if `path` of target 'backup-host' is mistyped, correct it in the config" in fix
    assert fix.endswith(
        f"`k3s-backup setup`, or on {lab.sshd.host}:"
        f" `mkdir -p -m 700 {absent} && chown {lab.sshd.user} {absent}`"
    )
    assert not absent.exists()  # doctor only looks


def test_last_run_late_or_failed_fails_and_the_log_shows_its_errors(node, lab):
    _, checks = node.doctor(hours_later=49)
    assert checks["last run"]["status"] == "WARN"
    _, checks = node.doctor(hours_later=73)
    assert checks["last run"]["status"] == "FAIL"
    state = FakeK3sState.load(lab.state_file)
    state.failure = "fatal"
    state.save(lab.state_file)
    assert node.run() == 1
    code, checks = node.doctor()
    assert code == 1
    assert checks["last run"]["status"] == "FAIL" and "ended failed" in checks["last run"]["saw"]
    assert checks["log"]["status"] == "WARN"
    assert "ERROR: snapshot failed" in checks["log"]["saw"]


def test_never_run_fails(lab, tmp_path):
    node = Node(lab, tmp_path / "root")
    node.configure()
    node.install_cron()
    code, checks = node.doctor()
    assert code == 1
    assert checks["last run"]["status"] == "FAIL"
    assert checks["log"]["status"] == "WARN"


def test_a_key_that_runs_only_the_service_passes_and_one_that_opens_a_shell_fails(lab, tmp_path):
    with service_host(lab) as host:
        host.host_setup("append-only")
        node = Node(lab, tmp_path / "root")
        node.configure(target={"user": host.user, "path": host.directory, "mode": "append-only"})
        node.install_cron()
        assert node.run() == 0
        code, checks = node.doctor()
        assert code == 0, checks
        assert checks["backup-host: restriction"]["status"] == "OK"
        assert checks["backup-host: service"]["status"] == "OK"
        assert "lists 1 copies" in checks["backup-host: service"]["saw"]
        assert checks["backup-host: free space"]["status"] == "OK"
        keys = host.home / ".ssh" / "authorized_keys"  # the line as the guide had it
        keys.write_text(f'restrict,from="127.0.0.1" {lab.sshd.client_key_pub.read_text()}')
        code, checks = node.doctor()
        assert code == 1
        restriction = checks["backup-host: restriction"]
        assert restriction["status"] == "FAIL" and "still opens a shell" in restriction["saw"]
        assert "host-setup" in restriction["fix"]
        service = checks["backup-host: service"]
        assert (
            service["status"] == "FAIL" and "did not start the k3s-backup service" in service["saw"]
        )
        assert "k3s-backup-service: not found" in service["saw"]  # what the shell said


@pytest.mark.parametrize("bucket_locked", [True, False])
def test_object_lock_set_needs_a_bucket_made_with_it(node, lab, s3_server, tmp_path, bucket_locked):
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    bucket = f"doc-{tmp_path.name.lower().replace('_', '-')}"[:60].rstrip("-")
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=bucket_locked)
    s3 = {
        "name": "objects",
        "type": "s3",
        "bucket": bucket,
        "endpoint_url": s3_server.endpoint_url,
        "credentials_file": str(s3_server.write_credentials(tmp_path / "s3-credentials")),
        "object_lock": "compliance",
    }
    node.configure(targets=[lab.ssh_target(), s3])
    code, checks = node.doctor()
    check = checks["objects: object lock"]
    if bucket_locked:
        assert check["status"] == "OK", check
        assert f"bucket {bucket} has Object Lock enabled" in check["saw"]
    else:
        assert code == 1 and check["status"] == "FAIL"
        assert f"bucket {bucket} has no Object Lock" in check["saw"]
        assert "--object-lock-enabled-for-bucket" in check["fix"]
        assert "put-object-lock-configuration" in check["fix"]
