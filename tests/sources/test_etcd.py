"""The `etcd` source against a real etcd that requires TLS client certificates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from k3s_backup.lab.etcd import EtcdServer, restore_snapshot, snapshot_status
from k3s_backup.plumbing.loopback import free_port
from tests.support.cli_runner import invoke
from tests.support.etcd_tls import CertificateAuthority, TlsEtcdServer
from tests.support.keys import recovery_key_file


@pytest.fixture
def etcd(tmp_path) -> Iterator[TlsEtcdServer]:
    with TlsEtcdServer(tmp_path / "etcd") as server:
        yield server


def write_config(tmp_path: Path, etcd: TlsEtcdServer, **etcd_keys: object) -> Path:
    settings = {
        "endpoints": [etcd.tls_endpoint],
        "cacert": str(etcd.ca.cert_path),
        "cert": str(etcd.client_cert.cert),
        "key": str(etcd.client_cert.key),
        "connect_timeout": 3,
        **etcd_keys,
    }
    lines = "\n".join(f"{key} = {_toml(value)}" for key, value in settings.items())
    path = tmp_path / "config.toml"
    (tmp_path / "usb").mkdir(mode=0o700, exist_ok=True)
    path.write_text(
        f'cluster_name = "kubeadm"\nsource = "etcd"\nnode_name = "cp-1"\n'
        f'snapshot_dir = "{tmp_path}/snapshots"\nstate_dir = "{tmp_path}/state"\n'
        f'log_file = "{tmp_path}/log"\n'
        f'recovery_key_file = "{recovery_key_file(tmp_path)}"\n'
        f"[etcd]\n{lines}\n"
        f'[[targets]]\nname = "usb"\ntype = "local"\npath = "{tmp_path}/usb"\n'
    )
    return path


def _toml(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def shipped(tmp_path: Path) -> list[Path]:
    usb = tmp_path / "usb"
    return sorted(p for p in usb.iterdir() if not p.name.endswith(".json")) if usb.exists() else []


def test_snapshot_holds_every_key_and_restores(etcd, tmp_path):
    written = {f"/registry/configmaps/default/cm-{i}": f"value-{i}".encode() for i in range(100)}
    for key, value in written.items():
        etcd.put(key, value)
    etcd.delete("/registry/configmaps/default/cm-7")
    del written["/registry/configmaps/default/cm-7"]
    result = invoke(["--config", str(write_config(tmp_path, etcd)), "run"])
    assert result.code == 0, result.stderr
    assert f"from {etcd.tls_endpoint}" in result.stdout
    [stored] = shipped(tmp_path)
    assert stored.name.startswith("kubeadm-") and "-cp-1-" in stored.name
    copy = tmp_path / "fetched.db"  # the stored form (zstd by default) undone by `fetch`
    args = ["--config", str(tmp_path / "config.toml"), "fetch", "latest", "--from", "usb"]
    fetched = invoke([*args, "--out", str(copy)])
    assert fetched.code == 0, fetched.stderr
    assert snapshot_status(copy)["totalKey"] >= len(written)
    restored = tmp_path / "restored"
    restore_snapshot(copy, restored)
    with EtcdServer(tmp_path / "check", data_dir=restored) as check:
        assert check.get_all("/registry/") == written
    assert not list((tmp_path / ".k3s-backup-staging").iterdir())  # nothing left staged


def test_second_endpoint_is_used_when_the_first_is_down(etcd, tmp_path):
    down = f"https://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, etcd, endpoints=[down, etcd.tls_endpoint])
    result = invoke(["--config", str(config), "run"])
    assert result.code == 0, result.stderr
    assert f"from {etcd.tls_endpoint}" in result.stdout
    assert f"skipped: cannot reach etcd at {down}" in result.stdout
    assert len(shipped(tmp_path)) == 1


def test_wrong_ca_is_a_clear_error(etcd, tmp_path):
    other = CertificateAuthority(tmp_path / "other-ca", name="other")
    result = invoke(
        ["--config", str(write_config(tmp_path, etcd, cacert=str(other.cert_path))), "run"]
    )
    assert result.code == 1
    assert "does not verify" in result.stderr and "set [etcd] cacert" in result.stderr
    assert shipped(tmp_path) == []


def test_client_certificate_from_another_ca_is_refused_clearly(etcd, tmp_path):
    other = CertificateAuthority(tmp_path / "other-ca", name="other").issue("c", server=False)
    config = write_config(tmp_path, etcd, cert=str(other.cert), key=str(other.key))
    result = invoke(["--config", str(config), "run"])
    assert result.code == 1
    assert "refused the TLS session" in result.stderr and "client certificate" in result.stderr


def test_missing_client_certificate_names_the_file(etcd, tmp_path):
    missing = tmp_path / "nope.crt"
    result = invoke(["--config", str(write_config(tmp_path, etcd, cert=str(missing))), "run"])
    assert result.code == 1
    assert f"cannot read the etcd cert {missing}" in result.stderr


def test_unreachable_endpoint_is_a_clear_error(etcd, tmp_path):
    down = f"https://127.0.0.1:{free_port()}"
    result = invoke(["--config", str(write_config(tmp_path, etcd, endpoints=[down])), "run"])
    assert result.code == 1
    assert f"cannot reach etcd at {down}" in result.stderr
    assert "nothing shipped" in result.stderr


def test_endpoints_must_be_urls(etcd, tmp_path):
    config = write_config(tmp_path, etcd, endpoints=["127.0.0.1:2379"])
    result = invoke(["--config", str(config), "run"])
    assert result.code == 2
    assert "etcd.endpoints: must be http:// or https:// URLs" in result.stderr
