"""`k3s-backup metrics` before any run (the alert rules: monitoring/test_alert_rules.py)."""

from k3s_backup import __version__
from tests.support.cli_runner import invoke


def test_metrics_before_any_run_has_only_the_info(tmp_path):
    config = tmp_path / "config.toml"
    state = tmp_path / "state"
    config.write_text(f'state_dir = "{state}"\n[[targets]]\nname = "h"\ntype = "ssh"\nhost = "h"\n')
    result = invoke(["--config", str(config), "metrics"])
    assert result.code == 0
    samples = [line for line in result.lines if not line.startswith("#")]
    assert samples == [f'k3s_backup_info{{cluster="k3s-homelab",version="{__version__}"}} 1.0']
