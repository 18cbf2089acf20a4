"""The textfile for node_exporter, parsed with prometheus-client's own parser, after a success
and after a failure; `k3s-backup metrics` prints the same; alert rules and the dashboard only
use metrics the textfile really has."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from k3s_backup.lab.fake_k3s import FakeK3sState
from k3s_backup.state import record_drill
from tests.support.cli_runner import invoke

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC_NAME = re.compile(r"\bk3s_backup_[a-z_]+\b")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(f"k3s_backup_{name}", tuple(sorted(labels.items())))]


@pytest.fixture
def textfile(tmp_path) -> Path:
    directory = tmp_path / "textfile_collector"
    directory.mkdir()
    return directory / "k3s_backup.prom"


@pytest.fixture
def config(lab, tmp_path, textfile) -> Path:
    return lab.write_config(tmp_path / "config.toml", metrics_textfile=textfile)


def run(lab, config: Path) -> int:
    return invoke(["--config", str(config), "run"], environ=lab.env()).code


def test_metrics_after_a_success(lab, config, textfile):
    before = time.time()
    assert run(lab, config) == 0
    found = samples(textfile.read_text())
    assert [p.name for p in textfile.parent.iterdir()] == [textfile.name]  # no temporary left
    assert value(found, "last_run_success") == 1
    assert value(found, "last_run_exit_code") == 0
    finished = value(found, "last_run_timestamp_seconds")
    assert before - 1 <= finished <= time.time() + 1
    assert value(found, "last_success_timestamp_seconds") == finished
    assert value(found, "last_run_duration_seconds") > 0
    for phase in ("snapshot", "upload", "verify", "rotate"):
        assert value(found, "last_run_phase_duration_seconds", phase=phase) >= 0
    assert value(found, "last_run_phase_duration_seconds", phase="snapshot") > 0
    [local] = [p for p in lab.snapshot_dir.iterdir() if p.name.startswith("k3s-lab-")]
    assert value(found, "last_snapshot_size_bytes") == local.stat().st_size
    [stored] = [p for p in lab.remote_dir.iterdir() if p.name.endswith(".zst")]
    assert value(found, "copies", location="backup-host") == 1
    assert value(found, "copies_size_bytes", location="backup-host") == stored.stat().st_size
    assert value(found, "copies", location="local") == 1
    unix = int(local.name.rsplit("-", 1)[1])
    assert value(found, "newest_copy_timestamp_seconds", location="backup-host") == unix
    assert 0 <= value(found, "newest_copy_age_seconds", location="backup-host") < 600
    assert value(found, "last_run_target_success", target="backup-host") == 1
    assert value(found, "last_run_target_attempts", target="backup-host") == 1
    printed = invoke(["--config", str(config), "metrics"], environ=lab.env())
    assert printed.code == 0
    assert {key for key in samples(printed.stdout)} == set(found)


def test_metrics_after_a_failure_keep_the_last_success(lab, config, textfile):
    assert run(lab, config) == 0
    success = value(samples(textfile.read_text()), "last_success_timestamp_seconds")
    state = FakeK3sState.load(lab.state_file)
    state.failure = "fatal"
    state.save(lab.state_file)
    assert run(lab, config) == 1
    found = samples(textfile.read_text())
    assert value(found, "last_run_success") == 0
    assert value(found, "last_run_exit_code") == 1
    assert value(found, "last_success_timestamp_seconds") == success
    assert value(found, "last_run_timestamp_seconds") >= success
    assert value(found, "copies", location="backup-host") == 1  # as of the last success
    assert ("k3s_backup_last_snapshot_size_bytes", ()) not in found  # no snapshot this time


def test_a_first_run_that_fails_reports_no_success_ever(lab, config, textfile):
    lab.sshd.stop()
    assert run(lab, config) == 3
    found = samples(textfile.read_text())
    assert value(found, "last_success_timestamp_seconds") == 0
    assert value(found, "last_run_exit_code") == 3
    assert value(found, "last_run_target_success", target="backup-host") == 0
    assert ("k3s_backup_copies", (("location", "backup-host"),)) not in found


def test_an_unwritable_textfile_only_warns(lab, tmp_path):
    missing = tmp_path / "no-such-dir" / "k3s_backup.prom"
    config = lab.write_config(tmp_path / "config.toml", metrics_textfile=missing)
    result = invoke(["--config", str(config), "run"], environ=lab.env())
    assert result.code == 0
    assert f"warning: cannot write metrics to {missing}: No such file or directory" in (
        result.stderr
    )


def test_alert_rules_and_dashboard_use_metrics_the_textfile_has(lab, config, textfile):
    when = datetime.now().astimezone().isoformat(timespec="seconds")
    record_drill(lab.root / "state", {"when": when, "ok": True})  # as `drill` does (test_drill)
    assert run(lab, config) == 0
    written = {name for name, _ in samples(textfile.read_text())}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "k3s-backup-rules.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "k3s-backup-dashboard.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used and used <= written, used - written


def test_a_symlink_planted_at_the_old_temporary_name_is_not_followed(lab, config, textfile):
    """prometheus-client's write_to_textfile opened `<path>.<pid>.<tid>` with a plain open()
    as root: a link there (the collector dir is often group-writable) overwrote its target."""
    victim = textfile.parent.parent / "victim"
    victim.write_text("root's file\n")
    planted = textfile.with_name(f"{textfile.name}.{os.getpid()}.{threading.get_ident()}")
    planted.symlink_to(victim)
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 0
    assert victim.read_text() == "root's file\n"
    assert planted.is_symlink()  # left alone, not written through
    assert textfile.stat().st_mode & 0o777 == 0o644
    assert value(samples(textfile.read_text()), "last_run_exit_code") == 0
