"""Bad configuration: one precise message naming key and file, exit 2, nothing done."""

from pathlib import Path

import pytest

from k3s_backup.commands.config_cmd import TEMPLATE
from k3s_backup.config import load_config
from tests.support.cli_runner import invoke

VALID_TARGET = """
[[targets]]
name = "proxmox"
type = "ssh"
host = "192.168.1.100"
"""

S3_TARGET = """
[[targets]]
name = "offsite"
type = "s3"
bucket = "k3s-backups"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'colour = "blue"\n' + VALID_TARGET,
            "unknown key 'colour' (check its spelling against `k3s-backup config init`)",
        ),
        ("keep_local = 0\n" + VALID_TARGET, "keep_local: must be at least 1, got 0"),
        ("keep_local = -2\n" + VALID_TARGET, "keep_local: must be at least 1, got -2"),
        ('keep_local = "3"\n' + VALID_TARGET, "keep_local: must be a whole number, got '3'"),
        (
            'snapshot_dir = "snaps"\n' + VALID_TARGET,
            "snapshot_dir: must be an absolute path, got 'snaps'",
        ),
        ('log_file = "k3s-backup.log"\n' + VALID_TARGET, "log_file: must be an absolute path"),
        (
            'cluster_name = "my cluster"\n' + VALID_TARGET,
            "cluster_name: may only contain letters, digits, '.', '_' and '-'",
        ),
        (
            'cluster_name = "etcd-snapshot-x"\n' + VALID_TARGET,
            "cluster_name: must not start with 'etcd-snapshot'",
        ),
        ('cluster_name = "a;rm -rf /"\n' + VALID_TARGET, "cluster_name: may only contain"),
        (VALID_TARGET + "keep = 0\n", "target 'proxmox': keep: must be at least 1, got 0"),
        (VALID_TARGET + 'path = "backups"\n', "target 'proxmox': path: must be an absolute path"),
        (VALID_TARGET + "port = 70000\n", "target 'proxmox': port: must be at most 65535"),
        (
            VALID_TARGET + 'identity_file = "id"\n',
            "target 'proxmox': identity_file: must be an absolute",
        ),
        (
            VALID_TARGET + "speed = 1\n",
            "unknown key 'speed' in target 'proxmox' (check its spelling",
        ),
        (VALID_TARGET + "retries = -1\n", "target 'proxmox': retries: must be at least 0, got -1"),
        (
            VALID_TARGET + "retry_delay = 7200\n",
            "target 'proxmox': retry_delay: must be at most 3600",
        ),
        ('[[targets]]\nname = "x"\ntype = "ftp"\n', "target 'x': target type must be one of"),
        ('[[targets]]\ntype = "ssh"\nhost = "h"\n', "targets[0].name: is required"),
        ('[[targets]]\nname = "x"\ntype = "ssh"\n', "target 'x': host: is required"),
        (VALID_TARGET + VALID_TARGET, "target names must be unique, repeated: proxmox"),
        ('[k3s]\ndata_dir = "var/lib"\n' + VALID_TARGET, "k3s.data_dir: must be an absolute path"),
        ("keep_local = \n", "not valid TOML"),
        (
            S3_TARGET + 'object_lock = "on"\n',
            "target 'offsite': object_lock: Input should be 'off'",
        ),
        (
            S3_TARGET + "object_lock_days = 30\n",
            "target 'offsite': object_lock_days needs object_lock = \"governance\"",
        ),
        (
            S3_TARGET + 'object_lock = "compliance"\nobject_lock_days = 0\n',
            "target 'offsite': object_lock_days: must be at least 1, got 0",
        ),
    ],
)
def test_bad_config_exits_2_naming_key_and_file(tmp_path, text, message):
    path = write(tmp_path, text)
    result = invoke(["--config", str(path), "run"])
    assert result.code == 2
    assert str(path) in result.stderr
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (VALID_TARGET + "kep = 3\n", "unknown key 'kep' in target 'proxmox': did you mean 'keep'?"),
        (
            VALID_TARGET + "identity_fle = '/root/k'\n",
            "unknown key 'identity_fle' in target 'proxmox': did you mean 'identity_file'?",
        ),
        (S3_TARGET + 'buckett = "x"\n', "unknown key 'buckett' in target 'offsite': did you mean"),
        ("keep_locl = 5\n" + VALID_TARGET, "unknown key 'keep_locl': did you mean 'keep_local'?"),
        ('[k3s]\ndatadir = "/x"\n' + VALID_TARGET, "in [k3s]: did you mean 'data_dir'?"),
    ],
)
def test_a_typo_suggests_the_nearest_key_of_that_table(tmp_path, text, message):
    result = invoke(["--config", str(write(tmp_path, text)), "run"])
    assert result.code == 2
    assert message in result.stderr


def test_each_target_is_named_by_its_name_in_every_message(tmp_path):
    text = VALID_TARGET + "keep = 0\n" + S3_TARGET + "object_lock_days = 3\n"
    result = invoke(["--config", str(write(tmp_path, text)), "run"])
    assert result.code == 2
    assert (
        f"{tmp_path / 'config.toml'}: target 'proxmox': keep: must be at least 1" in result.stderr
    )
    assert "target 'offsite': object_lock_days needs object_lock" in result.stderr
    assert "targets[" not in result.stderr
    assert result.stderr.count("'offsite'") == 1  # named once, not "target x: target x"


def test_missing_config_says_how_to_create_one(tmp_path):
    path = tmp_path / "absent.toml"
    result = invoke(["--config", str(path), "run"])
    assert result.code == 2
    assert f"no configuration at {path}" in result.stderr
    assert "k3s-backup config init" in result.stderr


def test_env_var_selects_config(tmp_path):
    path = write(tmp_path, 'cluster_name = "from-env"\n' + VALID_TARGET)
    result = invoke(["config", "show"], environ={"K3S_BACKUP_CONFIG": str(path)})
    assert result.code == 0
    assert 'cluster_name = "from-env"' in result.stdout


def test_show_fills_in_the_guides_defaults(tmp_path):
    result = invoke(["--config", str(write(tmp_path, VALID_TARGET)), "config", "show"])
    assert result.code == 0
    for expected in (
        'cluster_name = "k3s-homelab"',
        "keep_local = 3",
        'snapshot_dir = "/var/lib/rancher/k3s/server/db/snapshots"',
        'log_file = "/var/log/k3s-backup.log"',
        "keep = 7",
        'path = "/var/backups/k3s-etcd"',
    ):
        assert expected in result.stdout


SHOWN = """
drill_schedule = "0 4 * * 0"
metrics_textfile = "/var/lib/node_exporter/k3s_backup.prom"
[etcd]
connect_timeout = 2.5
[[targets]]
name = "proxmox"
type = "ssh"
host = "192.168.1.100"
mode = "append-only"
keep_weekly = 4
[[targets]]
name = "offsite"
type = "s3"
bucket = "k3s-backups"
endpoint_url = "http://minio.lan:9000"
object_lock = "governance"
[[targets]]
name = "nas"
type = "local"
path = "/mnt/nas"
[[restore.servers]]
host = "node-2"
[notify]
webhook_on_success = true
"""


@pytest.mark.parametrize("text", [SHOWN, VALID_TARGET, TEMPLATE])
def test_show_writes_toml_that_loads_back_as_the_same_configuration(tmp_path, text):
    path = write(tmp_path, text)
    result = invoke(["--config", str(path), "config", "show"])
    assert result.code == 0
    shown = tmp_path / "shown.toml"
    shown.write_text(result.stdout)
    shown.chmod(0o600)
    assert load_config(shown) == load_config(path)
    assert invoke(["--config", str(shown), "config", "show"]).stdout == result.stdout


def test_show_writes_defaults_as_the_template_does(tmp_path):
    result = invoke(["--config", str(write(tmp_path, S3_TARGET)), "config", "show"])
    lines = result.stdout.splitlines()
    assert "timeout = 10" in lines and "ready_timeout = 300" in lines  # not 10.0
    target = lines.index("[[targets]]")
    assert lines[target + 1 : target + 3] == ['name = "offsite"', 'type = "s3"']
    assert "# endpoint_url = ...  (unset)" in lines  # every key shown, an unset one commented
    assert "# metrics_textfile = ...  (unset)" in lines[:target]  # a top-level key, not a target's


def test_init_template_is_a_valid_config_and_private(tmp_path):
    path = tmp_path / "etc" / "config.toml"
    assert invoke(["config", "init", "--output", str(path)]).code == 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert invoke(["--config", str(path), "config", "show"]).code == 0


def test_init_never_overwrites_without_force(tmp_path):
    path = write(tmp_path, "# mine\n")
    result = invoke(["config", "init", "--output", str(path)])
    assert result.code == 2
    assert "already exists" in result.stderr
    assert path.read_text() == "# mine\n"


def test_no_targets_is_a_configuration_error(tmp_path):
    path = write(tmp_path, f'state_dir = "{tmp_path}/state"\nlog_file = "{tmp_path}/log"\n')
    result = invoke(["--config", str(path), "run"])
    assert result.code == 2
    assert "no [[targets]] configured" in result.stderr


def test_unknown_command_is_usage_error():
    result = invoke(["frobnicate"])
    assert result.code == 2
    assert "No such command" in result.stderr


def test_help_documents_exit_codes():
    result = invoke(["run", "--help"])
    assert result.code == 0
    for line in ("0  every copy", "1  failed", "2  configuration", "3  partial", "4  another run"):
        assert line in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'metrics_textfile = "k3s_backup.prom"\n' + VALID_TARGET,
            "metrics_textfile: must be an absolute path, got 'k3s_backup.prom'",
        ),
        (
            '[notify]\nping_url = "hc-ping.com/abc"\n' + VALID_TARGET,
            "notify.ping_url: must be an http:// or https:// URL, got 'hc-ping.com/…'",
        ),
        (
            '[notify]\nwebhook_url = "ftp://x"\n' + VALID_TARGET,
            "notify.webhook_url: must be an http:// or https:// URL, got 'ftp://x'",
        ),
        ("[notify]\ntimeout = 0\n" + VALID_TARGET, "notify.timeout: must be greater than 0"),
        ("[notify]\nretries = -1\n" + VALID_TARGET, "notify.retries: must be at least 0, got -1"),
        (
            '[notify]\nwebhook_on_success = "yes"\n' + VALID_TARGET,
            "notify.webhook_on_success: must be true or false, got 'yes'",
        ),
        (
            '[notify]\nping = "x"\n' + VALID_TARGET,
            "unknown key 'ping' in [notify]: did you mean 'ping_url'?",
        ),
    ],
)
def test_bad_monitoring_config_exits_2_naming_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    result = invoke(["--config", str(path), "config", "show"])
    assert result.code == 2
    assert message in result.stderr


def test_template_shows_every_monitoring_key(tmp_path):
    template = invoke(["config", "init"]).stdout
    for key in ("metrics_textfile", "[notify]", "ping_url", "webhook_url", "webhook_on_success"):
        assert key in template
    assert "timeout = 10" in template and "retries = 2" in template


SECRET_PING = "https://hc-ping.com/0f5e9c1a-secret-uuid"
SECRET_HOOK = "https://user:pw@chat.example/hooks/T0KEN?key=s3cret"


def test_show_redacts_the_ping_and_webhook_urls(tmp_path):
    """Their path and query are the secret (whoever has them can silence or fake the alerts)."""
    notify = f'[notify]\nping_url = "{SECRET_PING}"\nwebhook_url = "{SECRET_HOOK}"\n'
    result = invoke(["--config", str(write(tmp_path, notify + VALID_TARGET)), "config", "show"])
    assert result.code == 0
    assert 'ping_url = "https://hc-ping.com/…"' in result.stdout
    assert 'webhook_url = "https://chat.example/…"' in result.stdout
    for secret in ("secret-uuid", "T0KEN", "s3cret", "pw@"):
        assert secret not in result.stdout


def test_a_bad_url_error_does_not_print_its_secret_path(tmp_path):
    notify = '[notify]\nping_url = "htps://hc-ping.com/0f5e9c1a-secret-uuid"\n'
    result = invoke(["--config", str(write(tmp_path, notify + VALID_TARGET)), "config", "show"])
    assert result.code == 2
    assert "notify.ping_url: must be an http:// or https:// URL, got 'htps://hc-ping.com/…'" in (
        result.stderr
    )
    assert "secret-uuid" not in result.stderr


def test_a_configuration_others_can_write_is_refused(tmp_path):
    """It names what runs as root (`k3s.bin`): like ssh with a writable ~/.ssh/config."""
    path = write(tmp_path, VALID_TARGET)
    path.chmod(0o664)
    result = invoke(["--config", str(path), "config", "show"])
    assert result.code == 2
    assert f"{path} is writable by others (mode 0664)" in result.stderr
    assert f"`chmod 600 {path}`" in result.stderr
    path.chmod(0o644)
    assert invoke(["--config", str(path), "config", "show"]).code == 0


def test_a_readable_configuration_with_a_secret_url_warns(tmp_path):
    path = write(tmp_path, f'[notify]\nping_url = "{SECRET_PING}"\n' + VALID_TARGET)
    path.chmod(0o644)
    result = invoke(["--config", str(path), "config", "show"])
    assert result.code == 0
    assert (
        f"warning: {path} is readable by others (mode 0644) and holds the secret ping_url:"
        f" `chmod 600 {path}`"
    ) in result.stderr
    path.chmod(0o600)
    assert invoke(["--config", str(path), "config", "show"]).stderr == ""
