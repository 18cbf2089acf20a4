"""deploy/'s alert rules evaluated by Prometheus's own engine (`promtool test rules`) on the
metrics real runs wrote: they fire on what the issue names (no success in 26 h, a failed last
run, a failed target) and stay quiet on a healthy node."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli_runner import invoke

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "k3s-backup-rules.yml"
INSTANCE = "k3s-05:9100"  # what a scrape of node_exporter adds to every series
SUCCESS_TIME = "k3s_backup_last_success_timestamp_seconds"
LABEL = re.compile(r"\{\{ \$labels\.(\w+) \}\}")
DURATION = "{{ $value | humanizeDuration }}"

# On PATH, or where scripts/bootstrap.sh puts it (beside the venv's python).
PROMTOOL = shutil.which("promtool") or shutil.which(
    "promtool", path=str(Path(sys.executable).parent)
)
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is missing: scripts/bootstrap.sh installs it"
)


def _series(textfile: Path, success_at: float | None) -> list[dict[str, str]]:
    """Input series for promtool from the textfile, constant over 30 hours (5 m steps); the
    last success moved to `success_at` seconds on promtool's clock, which starts at 0."""
    series = []
    for family in text_string_to_metric_families(textfile.read_text()):
        for sample in family.samples:
            labels = {**sample.labels, "instance": INSTANCE}
            value = sample.value
            if sample.name == SUCCESS_TIME and success_at is not None and value > 0:
                value = success_at
            selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            series.append({"series": f"{sample.name}{{{selector}}}", "values": f"{value}+0x360"})
    return series


def _rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def _expected(alert: str, labels: dict[str, str], duration: str = "") -> dict[str, Any]:
    """The alert as Prometheus renders it: the rule's labels and annotations, templated."""
    rule = _rules()[alert]
    annotations = {
        key: LABEL.sub(lambda m: labels.get(m.group(1), ""), text).replace(DURATION, duration)
        for key, text in rule["annotations"].items()
    }
    return {"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": annotations}


def _promtool(tmp_path: Path, series: list[dict[str, str]], checks: list[dict[str, Any]]) -> None:
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "5m", "input_series": series, "alert_rule_test": checks}],
    }
    path = tmp_path / "rules.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_accepts_the_rules():
    done = subprocess.run([str(PROMTOOL), "check", "rules", str(RULES)], capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_a_node_that_never_succeeded_alerts_on_all_three(lab, tmp_path):
    textfile = tmp_path / "k3s_backup.prom"
    target = lab.ssh_target(port=1)  # nothing listens there: the target fails, exit 3
    config = lab.write_config(tmp_path / "c.toml", metrics_textfile=textfile, targets=[target])
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 3
    node = {"instance": INSTANCE}  # only k3s_backup_info carries the cluster
    _promtool(
        tmp_path,
        _series(textfile, success_at=None),
        [
            {"eval_time": "2h", "alertname": "K3sBackupNoRecentSuccess", "exp_alerts": []},
            {
                "eval_time": "27h",
                "alertname": "K3sBackupNoRecentSuccess",  # 0: never succeeded
                "exp_alerts": [_expected("K3sBackupNoRecentSuccess", node, "1d 3h 0m 0s")],
            },
            {
                "eval_time": "10m",
                "alertname": "K3sBackupLastRunFailed",
                "exp_alerts": [_expected("K3sBackupLastRunFailed", node)],
            },
            {
                "eval_time": "10m",
                "alertname": "K3sBackupTargetFailed",
                "exp_alerts": [
                    _expected("K3sBackupTargetFailed", {**node, "target": "backup-host"})
                ],
            },
        ],
    )


@needs_promtool
def test_a_healthy_node_alerts_only_once_its_last_success_is_26_hours_old(lab, tmp_path):
    textfile = tmp_path / "k3s_backup.prom"
    config = lab.write_config(tmp_path / "c.toml", metrics_textfile=textfile)
    assert invoke(["--config", str(config), "run"], environ=lab.env()).code == 0
    node = {"instance": INSTANCE}  # only k3s_backup_info carries the cluster
    quiet = ["K3sBackupLastRunFailed", "K3sBackupTargetFailed", "K3sBackupMetricsMissing"]
    _promtool(
        tmp_path,
        _series(textfile, success_at=3600),  # the success one hour into promtool's clock
        [
            *({"eval_time": "3h", "alertname": name, "exp_alerts": []} for name in quiet),
            {"eval_time": "26h", "alertname": "K3sBackupNoRecentSuccess", "exp_alerts": []},
            {
                "eval_time": "28h",  # 27 h since the success, and `for: 15m` has passed
                "alertname": "K3sBackupNoRecentSuccess",
                "exp_alerts": [_expected("K3sBackupNoRecentSuccess", node, "1d 3h 0m 0s")],
            },
        ],
    )
