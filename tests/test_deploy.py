"""deploy/: the example alert rules are well-formed and alert on what the issue asks for."""

from pathlib import Path

import yaml

from k3s_backup import __version__
from tests.cli_runner import invoke

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "k3s-backup-rules.yml"


def test_rules_alert_on_no_success_in_26_hours_and_a_failed_last_run():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    for rule in rules.values():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
    assert rules["K3sBackupNoRecentSuccess"]["expr"] == (
        "time() - k3s_backup_last_success_timestamp_seconds > 26 * 3600"
    )
    assert rules["K3sBackupLastRunFailed"]["expr"] == "k3s_backup_last_run_success == 0"


def test_metrics_before_any_run_has_only_the_info(tmp_path):
    config = tmp_path / "config.toml"
    state = tmp_path / "state"
    config.write_text(f'state_dir = "{state}"\n[[targets]]\nname = "h"\ntype = "ssh"\nhost = "h"\n')
    result = invoke(["--config", str(config), "metrics"])
    assert result.code == 0
    samples = [line for line in result.lines if not line.startswith("#")]
    assert samples == [f'k3s_backup_info{{cluster="k3s-homelab",version="{__version__}"}} 1.0']
