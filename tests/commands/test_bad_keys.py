"""An SSH key k3s-backup cannot use (a passphrase, a damaged file, a directory, the public half):
`run`, `setup` and `doctor` each name the file and the fix; no traceback, no "refused the key"."""

from __future__ import annotations

import json

import pytest

from tests.support.bad_keys import KINDS, bad_key
from tests.support.cli_runner import invoke

SAID = {
    "passphrase": "is protected by a passphrase",
    "malformed": "is not a private key",
    "directory": "is a directory, not a key file",
    "public": "holds a public key, not the private one",
}
FIX = {
    "passphrase": "ssh-keygen -p -N '' -f {key}",
    "malformed": "ssh-keygen -t ed25519 -N '' -f {key}",
    "directory": "set identity_file to the private key file inside it",
    "public": "the file without .pub",
}


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def key(lab, tmp_path, kind):
    return bad_key(kind, lab.sshd.client_key, tmp_path / "keys" / "id_ed25519")


def test_run_names_the_key_and_the_fix_not_a_refusal(lab, tmp_path, kind, key):
    config = lab.write_config(tmp_path / "c.toml", targets=[lab.ssh_target(identity_file=key)])
    result = invoke(["--config", str(config), "run"], environ=lab.env())
    assert result.code == 3  # the snapshot is made and kept; this target failed
    assert f"SSH key {key} {SAID[kind]}" in result.stderr
    assert FIX[kind].format(key=key) in result.stderr
    assert "refused" not in result.stderr and "authorized_keys" not in result.stderr


def test_doctor_fails_the_key_check_with_the_fix(lab, tmp_path, kind, key):
    config = lab.write_config(tmp_path / "c.toml", targets=[lab.ssh_target(identity_file=key)])
    result = invoke(
        ["--config", str(config), "doctor", "--json", "--root", str(tmp_path / "root")],
        environ=lab.env(),
    )
    assert result.code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    check = checks["backup-host: key"]
    assert check["status"] == "FAIL"
    assert f"SSH key {key} {SAID[kind]}" in check["saw"]
    assert FIX[kind].format(key=key) in check["fix"]
    assert "backup-host: connection" not in checks  # no connection tried with it
    text = invoke(
        ["--config", str(config), "doctor", "--root", str(tmp_path / "root")], environ=lab.env()
    )
    assert text.code == 1 and SAID[kind] in text.stdout


def test_setup_stops_at_the_key_step_with_the_fix(lab, tmp_path, kind, key):
    root = tmp_path / "root"
    config = root / "etc" / "k3s-backup" / "config.toml"
    config.parent.mkdir(parents=True)
    lab.write_config(config, targets=None)
    args = ["setup", "--root", str(root), "--host", lab.sshd.host, "--port", str(lab.sshd.port)]
    args += ["--mode", "sftp"]
    result = invoke([*args, "--identity-file", str(key), "--yes"], environ=lab.env())
    assert result.code == 1
    assert f"error: SSH key {key} {SAID[kind]}" in result.stderr
    assert FIX[kind].format(key=key) in result.stderr
    assert not (root / "etc" / "cron.d").exists()  # stopped before installing anything


@pytest.mark.parametrize("command", [["list"], ["verify"], ["status"]])
def test_every_other_command_names_the_key_and_the_fix(lab, tmp_path, kind, key, command):
    config = lab.write_config(tmp_path / "c.toml", targets=[lab.ssh_target(identity_file=key)])
    result = invoke(["--config", str(config), *command], environ=lab.env())
    said = result.stdout + result.stderr
    assert result.code == 1, said
    assert f"SSH key {key} {SAID[kind]}" in said
    assert FIX[kind].format(key=key) in said
    assert "Traceback" not in said and "refused" not in said
