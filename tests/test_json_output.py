"""`--json` on run, list, verify, status and doctor: one JSON document on stdout, valid against
the schemas shipped in k3s_backup/schemas/ (the contract for scripts and monitoring)."""

from __future__ import annotations

import pytest

from tests.support.cli_runner import invoke
from tests.support.json_schema import validate


@pytest.fixture
def config(lab, tmp_path):
    return lab.write_config(tmp_path / "config.toml")


def cli(lab, config, *args: str):
    return invoke(["--config", str(config), *args], environ=lab.env())


def test_run_json_is_the_run_report(lab, config):
    result = cli(lab, config, "run", "--json")
    assert result.code == 0, result.stderr
    report = validate(result.stdout, "run")
    assert report["outcome"] == "success" and report["exit_code"] == 0
    target = report["targets"]["backup-host"]
    assert target["ok"] is True and target["shipped"] == [target["newest"]]
    assert report["snapshot"]["name"] + ".zst" == target["newest"]
    log = (lab.root / "k3s-backup.log").read_text()
    assert "Backup complete" in log  # the progress lines still go to the log


def test_run_json_of_a_partial_run(lab, config):
    lab.sshd.stop()
    result = cli(lab, config, "run", "--json")
    assert result.code == 3
    report = validate(result.stdout, "run")
    assert report["outcome"] == "partial"
    assert report["targets"]["backup-host"]["ok"] is False
    assert report["error"].startswith("backup PARTIAL")
    assert "error: backup PARTIAL" in result.stderr


def test_list_verify_status_doctor_json(lab, config, tmp_path):
    assert cli(lab, config, "run").code == 0
    copies = validate(cli(lab, config, "list", "--json").stdout, "list")
    assert {c["location"] for c in copies} == {"local", "backup-host"}
    findings = validate(cli(lab, config, "verify", "--json").stdout, "verify")
    assert findings and all(f["ok"] for f in findings)
    root = ["--root", str(tmp_path / "root")]
    status = validate(cli(lab, config, "status", "--json", *root).stdout, "status")
    assert status["last_run"]["outcome"] == "success"
    doctor = validate(cli(lab, config, "doctor", "--json", *root).stdout, "doctor")
    assert doctor["checks"][0]["name"] == "config"
