"""How a run talks: progress bars on a terminal only; JSON log lines for log shippers."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.support.cli_runner import invoke


@pytest.fixture
def config(lab, tmp_path):
    return lab.write_config(tmp_path / "config.toml")


def test_a_terminal_gets_an_upload_progress_bar_with_rate(lab, config):
    wide = {**lab.env(), "COLUMNS": "200"}  # not a real terminal: its width from $COLUMNS
    result = invoke(["--config", str(config), "run"], environ=wide, tty=True)
    assert result.code == 0, result.stderr
    [stored] = [p.name for p in lab.remote_dir.iterdir() if p.name.endswith(".zst")]
    assert f"{stored} to backup-host" in result.stderr
    assert "100%" in result.stderr and "/s" in result.stderr
    assert "\r" in result.stderr  # redrawn in place
    assert "Backup complete" in result.stdout


def test_cron_gets_plain_lines_and_no_progress(lab, config):
    result = invoke(["--config", str(config), "run"], environ=lab.env())
    assert result.code == 0
    assert result.stderr == ""
    assert "\r" not in result.stdout and "%" not in result.stdout


def log_entries(lab) -> list[dict[str, str]]:
    lines = (lab.root / "k3s-backup.log").read_text().splitlines()
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_log_format_json_writes_one_object_per_line(lab, config):
    result = invoke(["--config", str(config), "--log-format", "json", "run"], environ=lab.env())
    assert result.code == 0
    entries = log_entries(lab)
    assert entries[0]["message"] == "Starting etcd backup of cluster k3s-lab"
    assert entries[-1]["message"].startswith("Backup complete: ")
    for entry in entries:
        assert set(entry) == {"time", "level", "message"} and entry["level"] == "info"
        assert datetime.fromisoformat(entry["time"]).tzinfo is not None
    assert "Backup complete" in result.stdout  # the console stays human


def test_log_format_from_the_environment_and_error_levels(lab, config):
    lab.sshd.stop()
    environ = {**lab.env(), "K3S_BACKUP_LOG_FORMAT": "json"}
    assert invoke(["--config", str(config), "run"], environ=environ).code == 3
    errors = [e["message"] for e in log_entries(lab) if e["level"] == "error"]
    assert errors[0].startswith("target backup-host failed:")
    assert errors[-1].startswith("backup PARTIAL: snapshot ")


def test_an_unknown_log_format_in_the_environment_is_a_usage_error(tmp_path):
    result = invoke(["config", "init"], environ={"K3S_BACKUP_LOG_FORMAT": "xml"})
    assert result.code == 2
    assert "K3S_BACKUP_LOG_FORMAT must be text or json, got 'xml'" in result.stderr


def test_the_log_file_is_created_0600(lab, config):
    """Its lines name hosts, paths and errors; logrotate's `create 0600` only applies from the
    first rotation, so the file is private from its first line."""
    log = lab.root / "k3s-backup.log"
    log.unlink(missing_ok=True)
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 0
    assert log.stat().st_mode & 0o777 == 0o600
