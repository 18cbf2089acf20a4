"""The test lab itself: real etcd behind the fake k3s/systemctl, real sshd, the cutting proxy."""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import time
import tomllib
import zipfile
from pathlib import Path

import paramiko
import pytest

from k3s_backup.lab.etcd import etcd_healthy, snapshot_status
from k3s_backup.lab.fake_k3s import FakeK3sState, set_failure
from k3s_backup.lab.lab import Lab
from k3s_backup.lab.sshd import read_banner
from tests.support.tcp_proxy import CuttingProxy

SAVED = re.compile(
    r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" level=info msg="Snapshot (\S+) saved\."$'
)


def k3s(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["k3s", *args], env=lab.env(), capture_output=True, text=True, check=False, timeout=60
    )


def systemctl(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", *args], env=lab.env(), capture_output=True, text=True, check=False, timeout=60
    )


def set_state(lab: Lab, **changes: object) -> None:
    state = FakeK3sState.load(lab.state_file)
    for key, value in changes.items():
        setattr(state, key, value)
    state.save(lab.state_file)


def trailer_ok(data: bytes) -> bool:
    return len(data) % 512 == 32 and hashlib.sha256(data[:-32]).digest() == data[-32:]


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_lab_starts_fast(tmp_path: Path) -> None:
    started = time.monotonic()
    with Lab(tmp_path / "lab") as lab:
        elapsed = time.monotonic() - started
        assert lab.etcd.get_all() == {}
    assert elapsed < 1.5, f"lab took {elapsed:.2f} s to start"


def test_etcd_put_get_delete(lab: Lab) -> None:
    lab.etcd.put("/registry/a", "1")
    lab.etcd.put("-dash", b"\x00\n-binary\n")
    assert lab.etcd.get_all() == {"/registry/a": b"1", "-dash": b"\x00\n-binary\n"}
    assert lab.etcd.get_all("/registry/") == {"/registry/a": b"1"}
    assert lab.etcd.delete("/registry/a") == 1
    assert lab.etcd.get_all("/registry/") == {}


def test_save_writes_a_valid_snapshot_and_logs_on_stderr_only(lab: Lab) -> None:
    lab.etcd.put("/registry/secrets/default/db", "s3cr3t")
    result = k3s(lab, "etcd-snapshot", "save", "--name", "k3s-lab-x", f"--dir={lab.snapshot_dir}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    [name] = files(lab.snapshot_dir)
    assert re.fullmatch(r"k3s-lab-x-k3s-05-\d{10}", name)
    match = SAVED.match(result.stderr.strip())
    assert match and match.group(1) == name
    path = lab.snapshot_dir / name
    assert trailer_ok(path.read_bytes())
    assert path.stat().st_mode & 0o777 == 0o600
    assert lab.snapshot_dir.stat().st_mode & 0o777 == 0o700
    assert snapshot_status(path)["totalKey"] > 0


def test_save_without_subcommand_and_default_name(lab: Lab) -> None:
    assert k3s(lab, "etcd-snapshot").returncode == 0
    [name] = files(lab.snapshot_dir)
    assert name.startswith("on-demand-k3s-05-")


def test_save_refuses_a_missing_non_default_dir_and_a_missing_token(
    lab: Lab, tmp_path: Path
) -> None:
    result = k3s(lab, "etcd-snapshot", "save", "--dir", str(tmp_path / "nope"))
    assert result.returncode == 1 and "level=fatal" in result.stderr
    (lab.data_dir / "server" / "token").unlink()
    result = k3s(lab, "etcd-snapshot", "save")
    assert result.returncode == 1 and "token" in result.stderr


def test_silent_failure_exits_0_without_output_or_file(lab: Lab) -> None:
    set_failure(lab.state_file, "silent")
    result = k3s(lab, "etcd-snapshot", "save", "--name", "quiet")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert files(lab.snapshot_dir) == []


@pytest.mark.parametrize(
    ("failure", "message"),
    [("fatal", "failed to get CA certs"), ("busy", "etcd-snapshot error ID 40905")],
)
def test_fatal_failures_exit_1(lab: Lab, failure: str, message: str) -> None:
    set_state(lab, failure=failure)
    result = k3s(lab, "etcd-snapshot", "save")
    assert result.returncode == 1
    assert re.match(r'^time="[^"]+" level=fatal msg="Error: ', result.stderr)
    assert message in result.stderr
    assert files(lab.snapshot_dir) == []


@pytest.mark.parametrize("generation", ["current", "legacy"])
def test_save_with_etcd_down_fails_promptly(lab: Lab, generation: str) -> None:
    assert systemctl(lab, "stop", "k3s").returncode == 0
    set_state(lab, service_active=True, generation=generation)  # the unit "runs", etcd does not
    started = time.monotonic()
    result = k3s(lab, "etcd-snapshot", "save")
    assert result.returncode == 1 and "level=fatal" in result.stderr
    assert time.monotonic() - started < 10
    assert files(lab.snapshot_dir) == []


def test_corrupt_failure_writes_a_file_whose_trailer_no_longer_matches(lab: Lab) -> None:
    set_state(lab, failure="corrupt")
    result = k3s(lab, "etcd-snapshot", "save", "--name", "bad")
    assert result.returncode == 0 and "saved." in result.stderr
    [name] = files(lab.snapshot_dir)
    assert not trailer_ok((lab.snapshot_dir / name).read_bytes())


@pytest.mark.parametrize(("generation", "mode"), [("current", 0o600), ("legacy", 0o644)])
def test_compress_makes_a_one_entry_zip(lab: Lab, generation: str, mode: int) -> None:
    set_state(lab, generation=generation, config_warning=True)
    result = k3s(lab, "etcd-snapshot", "save", "--name=z", "--etcd-snapshot-compress")
    assert result.returncode == 0, result.stderr
    assert "Unknown flag --foo found in config.yaml, skipping" in result.stderr.splitlines()[0]
    [name] = files(lab.snapshot_dir)
    assert name.endswith(".zip")
    path = lab.snapshot_dir / name
    with zipfile.ZipFile(path) as archive:
        [info] = archive.infolist()
        assert info.filename == name.removesuffix(".zip")
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert trailer_ok(archive.read(info))
    assert path.stat().st_mode & 0o777 == mode
    if generation == "legacy":
        assert "Saving etcd snapshot to" in result.stderr and "saved." not in result.stderr


def test_delete_reports_not_found_and_exits_0(lab: Lab) -> None:
    assert k3s(lab, "etcd-snapshot", "save", "--name", "d").returncode == 0
    [name] = files(lab.snapshot_dir)
    result = k3s(lab, "etcd-snapshot", "delete", "missing-1", name)
    assert result.returncode == 0
    assert 'level=warning msg="Snapshot missing-1 not found."' in result.stderr
    assert f'msg="Snapshot {name} deleted."' in result.stderr
    assert files(lab.snapshot_dir) == []


def test_delete_noop_logs_deleted_but_keeps_the_file(lab: Lab) -> None:
    assert k3s(lab, "etcd-snapshot", "save", "--name", "d").returncode == 0
    [name] = files(lab.snapshot_dir)
    set_state(lab, delete_noop=True)
    result = k3s(lab, "etcd-snapshot", "delete", "--dir", str(lab.snapshot_dir), name)
    assert result.returncode == 0 and "deleted." in result.stderr
    assert files(lab.snapshot_dir) == [name]


def test_ls_and_prune(lab: Lab) -> None:
    lab.snapshot_dir.mkdir(parents=True, mode=0o700)
    for stamp in (1700000003, 1700000001, 1700000002):
        (lab.snapshot_dir / f"keep-n-{stamp}").write_bytes(b"x")
    (lab.snapshot_dir / "other-n-1600000000").write_bytes(b"x")
    table = k3s(lab, "etcd-snapshot", "ls").stdout.splitlines()
    assert table[0].split() == ["Name", "Location", "Size", "Created"]
    assert [line.split()[0] for line in table[1:]] == [
        "other-n-1600000000",
        "keep-n-1700000001",
        "keep-n-1700000002",
        "keep-n-1700000003",
    ]
    listed = k3s(lab, "etcd-snapshot", "list", "-o", "json").stdout
    assert listed.startswith('{\n    "apiVersion": "v1",\n    "kind": "List"')
    result = k3s(lab, "etcd-snapshot", "prune", "--snapshot-retention", "1", "--name", "keep")
    assert result.returncode == 0 and "Removing local snapshot" in result.stderr
    assert files(lab.snapshot_dir) == ["keep-n-1700000003", "other-n-1600000000"]


def test_version(lab: Lab) -> None:
    assert k3s(lab, "--version").stdout.startswith("k3s version v1.33.4+k3s1 (abcdef12)\n")


def _ssh_connect(lab: Lab, port: int | None = None) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        lab.sshd.host,
        port=port or lab.sshd.port,
        username=lab.sshd.user,
        key_filename=str(lab.sshd.client_key),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def test_paramiko_connects_with_the_known_host_key_and_refuses_a_new_one(lab: Lab) -> None:
    assert lab.known_hosts.read_text().startswith(f"[127.0.0.1]:{lab.sshd.port} ssh-ed25519 ")
    with _ssh_connect(lab) as client, client.open_sftp() as sftp:
        assert sftp.listdir(str(lab.remote_dir)) == []  # made by the lab, as setup would
    lab.sshd.regenerate_host_key()
    with pytest.raises(paramiko.BadHostKeyException):
        _ssh_connect(lab)


def test_sshd_stops_and_comes_back_on_the_same_port(lab: Lab) -> None:
    port = lab.sshd.port
    lab.sshd.stop()
    with pytest.raises(OSError):
        read_banner("127.0.0.1", port)
    lab.sshd.start()
    assert lab.sshd.port == port
    assert read_banner("127.0.0.1", port).startswith(b"SSH-2.0-OpenSSH")


def _upload(client: paramiko.SSHClient, path: Path, data: bytes) -> None:
    with client.open_sftp() as sftp, sftp.open(str(path), "wb") as remote:
        remote.write(data)


def test_cutting_proxy_passes_then_cuts(lab: Lab) -> None:
    lab.known_hosts.write_text("")
    with CuttingProxy(("127.0.0.1", lab.sshd.port)) as proxy:
        lab.known_hosts.write_text(lab.sshd.known_hosts_line(port=proxy.port) + "\n")
        with _ssh_connect(lab, proxy.port) as client, client.open_sftp() as sftp:
            assert sftp.listdir("/") != []
        proxy.cut_after = 10_000
        cut = (OSError, EOFError, paramiko.SSHException)
        with _ssh_connect(lab, proxy.port) as client, pytest.raises(cut):
            _upload(client, lab.root / "upload", b"x" * 200_000)
        assert proxy.cuts == 1


def test_cutting_proxy_resets_after_n_bytes_upstream(lab: Lab) -> None:
    with CuttingProxy(("127.0.0.1", lab.sshd.port), cut_after=100) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            assert sock.recv(256).startswith(b"SSH-2.0-")
            sock.sendall(b"SSH-2.0-test\r\n" + b"\0" * 200)
            with pytest.raises(ConnectionResetError):
                while sock.recv(4096):
                    pass
        assert proxy.cuts == 1


def test_systemctl_stop_start_keeps_the_data(lab: Lab) -> None:
    lab.etcd.put("/registry/kept", "yes")
    old_pid = lab.etcd.pid
    assert systemctl(lab, "stop", "k3s").returncode == 0
    assert systemctl(lab, "is-active", "k3s").returncode == 3
    assert k3s(lab, "kubectl", "get", "nodes").returncode == 1
    assert "failed to get CA certs" in k3s(lab, "etcd-snapshot", "save").stderr
    assert not etcd_healthy(lab.etcd.endpoint, timeout=0.3)
    assert systemctl(lab, "start", "k3s.service").returncode == 0
    result = systemctl(lab, "is-active", "k3s")
    assert (result.returncode, result.stdout) == (0, "active\n")
    assert FakeK3sState.load(lab.state_file).etcd_pid != old_pid
    assert lab.etcd.get_all() == {"/registry/kept": b"yes"}
    assert "Ready" in k3s(lab, "kubectl", "get", "nodes").stdout
    assert systemctl(lab, "is-active", "cron").stdout == "active\n"
    assert systemctl(lab, "stop", "nginx").returncode == 1


def _snapshot(lab: Lab, name: str) -> Path:
    assert k3s(lab, "etcd-snapshot", "save", "--name", name).returncode == 0
    [path] = lab.snapshot_dir.glob(f"{name}-*")
    return path


def test_cluster_reset_restores_a_snapshot(lab: Lab) -> None:
    lab.etcd.put("/registry/before", "1")
    snapshot = _snapshot(lab, "restore-me")
    lab.etcd.put("/registry/after", "2")
    reset = ["server", "--cluster-reset", f"--cluster-reset-restore-path={snapshot}"]
    refused = k3s(lab, *reset)
    assert refused.returncode == 1 and "etcd already running" in refused.stderr
    assert systemctl(lab, "stop", "k3s").returncode == 0
    result = k3s(lab, *reset)
    assert result.returncode == 0, result.stderr
    assert "Pre-restore etcd database moved to" in result.stderr
    assert "Managed etcd cluster membership has been reset" in result.stderr
    db = lab.data_dir / "server" / "db"
    assert (db / "reset-flag").exists()
    assert [p.name for p in db.glob("etcd-old-*")]
    assert systemctl(lab, "start", "k3s").returncode == 0
    assert not (db / "reset-flag").exists()
    assert lab.etcd.get_all("/registry/") == {"/registry/before": b"1"}


def test_cluster_reset_refusals_move_nothing(lab: Lab, tmp_path: Path) -> None:
    snapshot = _snapshot(lab, "r")
    assert systemctl(lab, "stop", "k3s").returncode == 0
    corrupt = tmp_path / "corrupt"
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    config = lab.root / "etc" / "config.yaml"
    config.parent.mkdir()
    config.write_text("server: https://10.0.0.1:6443\n")
    cases = [
        (f"--cluster-reset-restore-path={snapshot}", "--server is not compatible"),
        ("--cluster-reset-restore-path=relative/file", "absolute"),
        (f"--cluster-reset-restore-path={corrupt}", "missing hash"),
    ]
    for restore, message in cases:
        result = k3s(lab, "server", "--cluster-reset", restore)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        config.write_text("token: abc\n")
    set_state(lab, reset_failure=True)
    result = k3s(lab, "server", "--cluster-reset", f"--cluster-reset-restore-path={snapshot}")
    assert result.returncode == 1 and "simulated cluster-reset failure" in result.stderr
    assert not list((lab.data_dir / "server" / "db").glob("etcd-old-*"))


def test_write_config_is_valid_toml_with_overrides(lab: Lab, tmp_path: Path) -> None:
    path = lab.write_config(
        tmp_path / "c.toml",
        keep_local=1,
        targets=[{"name": "usb", "type": "local", "path": str(tmp_path / "usb"), "keep": 2}],
    )
    data = tomllib.loads(path.read_text())
    assert data["keep_local"] == 1
    assert data["k3s"] == {"bin": str(lab.bin_dir / "k3s"), "data_dir": str(lab.data_dir)}
    assert data["targets"] == [
        {"name": "usb", "type": "local", "path": str(tmp_path / "usb"), "keep": 2}
    ]
    default = tomllib.loads(lab.write_config(tmp_path / "d.toml").read_text())
    assert default["targets"][0]["port"] == lab.sshd.port
    assert default["snapshot_dir"] == str(lab.snapshot_dir)
