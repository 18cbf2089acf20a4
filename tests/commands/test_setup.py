"""`k3s-backup setup` and `uninstall` into a temporary root, against the lab's real sshd."""

from __future__ import annotations

import base64
import difflib
import re
import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest
import zstandard

from k3s_backup.lab.fake_k3s import FakeK3sState
from k3s_backup.ssh.hostkeys import fingerprint
from tests.support.cli_runner import Result, invoke
from tests.support.filesystem import unwritable

FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def tree(*roots: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under `roots` with its mode and (for files) bytes."""
    seen: dict[str, tuple[int, bytes | None]] = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))] if root.exists() else []:
            mode = path.lstat().st_mode
            seen[str(path)] = (mode, path.read_bytes() if path.is_file() else None)
    return seen


def host_fingerprint(lab) -> str:
    key = lab.sshd.host_key_pub.read_text().split()[1]
    return fingerprint(paramiko.Ed25519Key(data=base64.b64decode(key)))


@pytest.fixture
def root(lab, tmp_path) -> Path:
    """A node root with the lab's K3s paths already in its configuration (as after install.sh)."""
    root = tmp_path / "root"
    config = root / "etc" / "k3s-backup" / "config.toml"
    config.parent.mkdir(parents=True)
    lab.write_config(config, targets=None)
    return root


def setup_args(lab, root: Path, *extra: str) -> list[str]:
    return [
        "setup",
        "--root",
        str(root),
        "--host",
        lab.sshd.host,
        "--port",
        str(lab.sshd.port),
        "--user",
        lab.sshd.user,
        "--path",
        str(lab.remote_dir),
        "--mode",
        "sftp",  # the lab's host is the guide's root SFTP; the service's: test_setup_service.py
        *extra,
    ]


def setup(lab, root: Path, *extra: str, stdin: str = "") -> Result:
    return invoke(setup_args(lab, root, *extra), environ=lab.env(), stdin=stdin)


def authorize(lab, root: Path) -> str:
    """Put the printed restricted line (from= this node) in the backup host's authorized_keys."""
    result = setup(lab, root, "--accept-host-key", host_fingerprint(lab))
    assert result.code == 1
    [line] = [ln.strip() for ln in result.stdout.splitlines() if ln.strip().startswith("restrict")]
    lab.sshd.authorized_keys.write_text(line + "\n")
    return line


def test_setup_from_scratch_with_the_restricted_key_backs_up(lab, root):
    key = root / "root" / ".ssh" / "id_ed25519"
    known_hosts = root / "root" / ".ssh" / "known_hosts"

    first = setup(lab, root)  # not a terminal, no --accept-host-key: stop and say how
    assert first.code == 2
    assert host_fingerprint(lab) in first.stdout
    assert f"--accept-host-key {host_fingerprint(lab)}" in first.stderr
    assert not known_hosts.exists()
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    public = (root / "root" / ".ssh" / "id_ed25519.pub").read_text().strip()
    assert public in first.stdout

    line = authorize(lab, root)  # host key trusted; the key is refused until added
    assert line == f'restrict,from="127.0.0.1" {public}'
    assert known_hosts.stat().st_mode & 0o777 == 0o600

    done = setup(lab, root)
    assert done.code == 0, done.stderr
    assert "Backup complete" in done.stdout
    [copy] = [
        p
        for p in lab.remote_dir.iterdir()
        if re.match(r"k3s-lab-\d{8}-\d{6}-.*-\d+\.zst$", p.name)  # zstd by default
    ]
    local = lab.snapshot_dir / copy.name.removesuffix(".zst")
    plain = zstandard.ZstdDecompressor().decompressobj().decompress(copy.read_bytes())
    assert plain == local.read_bytes()
    assert lab.remote_dir.stat().st_mode & 0o777 == 0o700
    config = root / "etc" / "k3s-backup" / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o600
    assert f"port = {lab.sshd.port}" in config.read_text()

    cron = (root / "etc" / "cron.d" / "k3s-backup").read_text()
    [job] = [
        ln for ln in cron.splitlines() if ln and not ln.startswith("#") and "=" not in ln.split()[0]
    ]
    words = job.split()
    assert words[:6] == ["0", "2", "*", "*", "*", "root"]
    assert Path(words[6]).is_absolute() and Path(words[6]).name == "k3s-backup"
    assert words[7:] == [
        "--config",
        str(config),
        "run",
        "--log-only",
        f">>{lab.root / 'k3s-backup.log'}",
        "2>&1",
    ]
    assert "PATH=/usr/local/sbin:/usr/local/bin" in cron
    rule = root / "etc" / "logrotate.d" / "k3s-backup"
    assert str(lab.root / "k3s-backup.log") in rule.read_text()
    if shutil.which("logrotate"):
        check = subprocess.run(
            ["logrotate", "--debug", "--state", str(root / "lr.state"), str(rule)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        (root / "lr.state").unlink(missing_ok=True)

    before = tree(root, lab.remote_dir, lab.snapshot_dir)
    again = setup(lab, root)
    assert again.code == 0, again.stderr
    assert "Nothing changed" in again.stdout
    assert tree(root, lab.remote_dir, lab.snapshot_dir) == before


def test_log_only_run_keeps_every_line_once(lab, root, tmp_path):
    config = lab.write_config(tmp_path / "c.toml")
    result = invoke(["--config", str(config), "run", "--log-only"], environ=lab.env())
    assert result.code == 0
    assert result.stdout == "" and result.stderr == ""
    log = (lab.root / "k3s-backup.log").read_text()
    assert log.count("Backup complete") == 1


def test_yes_never_accepts_an_unknown_host_key(lab, root):
    result = setup(lab, root, "--yes")
    assert result.code == 2
    assert "needs your confirmation" in result.stderr
    assert not (root / "root" / ".ssh" / "known_hosts").exists()


def test_interactive_yes_trusts_and_anything_else_does_not(lab, root, monkeypatch):
    monkeypatch.setattr("tests.support.cli_runner._Tty.isatty", lambda self: True)
    known_hosts = root / "root" / ".ssh" / "known_hosts"
    refused = setup(lab, root, "--yes", stdin="y\n")
    assert refused.code == 1 and "not trusted" in refused.stderr
    assert not known_hosts.exists()
    trusted = setup(lab, root, "--yes", stdin="yes\n\n")  # then Enter at the key prompt, EOF
    assert trusted.code == 1  # the key is not authorized on the host yet
    assert lab.sshd.known_hosts_line() == known_hosts.read_text().strip()


def test_a_wrong_accept_host_key_is_refused_with_both_fingerprints(lab, root):
    wrong = "SHA256:" + "A" * 43
    result = setup(lab, root, "--accept-host-key", wrong)
    assert result.code == 1
    assert wrong in result.stderr and host_fingerprint(lab) in result.stderr
    assert not (root / "root" / ".ssh" / "known_hosts").exists()


def test_a_changed_host_key_is_refused_and_known_hosts_kept(lab, root):
    authorize(lab, root)
    known_hosts = root / "root" / ".ssh" / "known_hosts"
    trusted = known_hosts.read_bytes()
    old = host_fingerprint(lab)
    lab.sshd.regenerate_host_key()
    result = setup(lab, root, "--accept-host-key", host_fingerprint(lab))
    assert result.code == 1
    assert "CHANGED" in result.stderr
    assert old in result.stderr and host_fingerprint(lab) in result.stderr
    assert "ssh-keygen -R" in result.stderr
    assert known_hosts.read_bytes() == trusted


def test_dry_run_touches_nothing_and_shows_every_file(lab, root):
    before = tree(root, lab.remote_dir, lab.snapshot_dir, lab.root / "state")
    result = setup(lab, root, "--dry-run", "--scheduler", "systemd")
    assert result.code == 0, result.stderr
    assert tree(root, lab.remote_dir, lab.snapshot_dir, lab.root / "state") == before
    assert "would generate an ed25519 key" in result.stdout
    assert host_fingerprint(lab) in result.stdout
    assert "| OnCalendar=*-*-* 02:00:00" in result.stdout
    assert "| Type=oneshot" in result.stdout
    assert "| [[targets]]" in result.stdout
    assert "would run `k3s-backup run`" in result.stdout


def _verify_units(*units: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        return
    check = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert "k3s-backup" not in check.stderr, check.stderr  # no warning about our units


def test_systemd_scheduler_installs_verified_units_and_switching_back_removes_them(lab, root):
    authorize(lab, root)
    result = setup(lab, root, "--scheduler", "systemd", "--schedule", "30 3 * * 1-5")
    assert result.code == 0, result.stderr
    units = root / "etc" / "systemd" / "system"
    timer, service = units / "k3s-backup.timer", units / "k3s-backup.service"
    text = timer.read_text()
    assert "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 03:30:00" in text
    assert "Persistent=true" in text and "RandomizedDelaySec=5min" in text
    assert "Type=oneshot" in service.read_text()
    assert not (root / "etc" / "cron.d" / "k3s-backup").exists()
    assert "skipped" in result.stdout  # no systemctl under --root
    _verify_units(timer, service)

    back = setup(lab, root, "--scheduler", "cron")
    assert back.code == 0, back.stderr
    assert not timer.exists() and not service.exists()
    assert "30 3 * * 1-5 root" in (root / "etc" / "cron.d" / "k3s-backup").read_text()


def test_a_schedule_systemd_cannot_express_is_refused_before_any_change(lab, root):
    before = tree(root)
    result = setup(lab, root, "--scheduler", "systemd", "--schedule", "0 2 1 * 1")
    assert result.code == 2
    assert "either matches" in result.stderr
    assert tree(root) == before


def test_a_foreign_cron_file_is_never_replaced_or_removed(lab, root):
    authorize(lab, root)
    cron = root / "etc" / "cron.d" / "k3s-backup"
    cron.parent.mkdir(parents=True)
    guide = "0 2 * * * root /opt/k3s-backup/etcd-backup.sh >> /var/log/k3s-backup.log 2>&1\n"
    cron.write_text(guide)
    result = setup(lab, root)
    assert result.code == 2
    assert "was not written by k3s-backup" in result.stderr
    removal = invoke(["uninstall", "--root", str(root)], environ=lab.env())
    assert removal.code == 2
    assert cron.read_text() == guide


def test_uninstall_removes_schedule_and_rule_never_backups(lab, root):
    authorize(lab, root)
    assert setup(lab, root).code == 0
    config = root / "etc" / "k3s-backup" / "config.toml"
    backups = tree(lab.remote_dir, lab.snapshot_dir)
    keys = tree(root / "root")
    result = invoke(["uninstall", "--root", str(root)], environ=lab.env())
    assert result.code == 0, result.stderr
    assert not (root / "etc" / "cron.d" / "k3s-backup").exists()
    assert not (root / "etc" / "logrotate.d" / "k3s-backup").exists()
    assert config.exists()
    assert tree(lab.remote_dir, lab.snapshot_dir) == backups
    assert tree(root / "root") == keys
    purge = invoke(["uninstall", "--root", str(root), "--purge-config"], environ=lab.env())
    assert purge.code == 0
    assert not config.exists()
    assert tree(lab.remote_dir, lab.snapshot_dir) == backups


def test_uninstall_dry_run_says_each_removal_and_removes_nothing(lab, root):
    authorize(lab, root)
    assert setup(lab, root, "--scheduler", "systemd").code == 0
    before = tree(root)
    units = root / "etc" / "systemd" / "system"
    dry = invoke(["uninstall", "--root", str(root), "--dry-run"], environ=lab.env())
    assert dry.code == 0, dry.stderr
    assert tree(root) == before
    assert f"would remove {units / 'k3s-backup.timer'}\n" in dry.stdout
    assert "would run `systemctl disable --now k3s-backup.timer` (uninstalling under" in dry.stdout
    real = invoke(["uninstall", "--root", str(root)], environ=lab.env())
    assert f"removed {units / 'k3s-backup.timer'}\n" in real.stdout
    assert not (units / "k3s-backup.timer").exists()


def test_existing_key_with_unsafe_mode_stops_setup(lab, root, tmp_path):
    key = tmp_path / "keys" / "key"
    key.parent.mkdir()
    shutil.copy(lab.sshd.client_key, key)
    key.chmod(0o644)
    before = tree(key.parent, root)
    result = setup(lab, root, "--identity-file", str(key))
    assert result.code == 1
    assert f"chmod 600 {key}" in result.stderr
    assert tree(key.parent, root) == before  # nothing written, the key left as it was


def test_an_unwritable_remote_dir_stops_setup_before_any_schedule(lab, root):
    authorize(lab, root)
    lab.remote_dir.mkdir(mode=0o700, exist_ok=True)
    with unwritable(lab.remote_dir):
        result = setup(lab, root)
    assert result.code == 1
    assert "not writable" in result.stderr + result.stdout
    assert not (root / "etc" / "cron.d" / "k3s-backup").exists()
    assert list(lab.remote_dir.iterdir()) == []  # no probe file left behind


def test_a_weekly_drill_is_scheduled_with_cron_and_with_systemd(lab, root):
    authorize(lab, root)
    cron = root / "etc" / "cron.d" / "k3s-backup"
    result = setup(lab, root, "--drill-schedule", "0 4 * * 0")
    assert result.code == 0, result.stderr
    jobs = [ln for ln in cron.read_text().splitlines() if ln[:1].isdigit()]
    assert [job.split()[:6] for job in jobs] == [
        ["0", "2", "*", "*", "*", "root"],  # the backup first: what status and doctor read
        ["0", "4", "*", "*", "0", "root"],
    ]
    assert jobs[1].split()[9:12] == ["drill", "latest", f">>{lab.root / 'k3s-backup.log'}"]
    assert (
        'drill_schedule = "0 4 * * 0"' in (root / "etc" / "k3s-backup" / "config.toml").read_text()
    )
    status = invoke(["status", "--root", str(root)], environ=lab.env())
    assert "Schedule:    0 2 * * * (cron" in status.stdout  # the backup's, not the drill's

    result = setup(lab, root, "--scheduler", "systemd")
    assert result.code == 0, result.stderr
    units = root / "etc" / "systemd" / "system"
    drill_timer, drill_service = (
        units / "k3s-backup-drill.timer",
        units / "k3s-backup-drill.service",
    )
    assert "OnCalendar=Sun *-*-* 04:00:00" in drill_timer.read_text()
    assert "Description=Run k3s-backup drill on its schedule" in drill_timer.read_text()
    assert "drill latest" in drill_service.read_text()
    assert "enable --now k3s-backup-drill.timer" in result.stdout
    _verify_units(drill_timer, drill_service)

    off = setup(lab, root, "--drill-schedule", "off")
    assert off.code == 0, off.stderr
    assert not drill_timer.exists() and not drill_service.exists()
    assert (units / "k3s-backup.timer").exists()

    setup(lab, root, "--drill-schedule", "0 4 * * 0")
    removal = invoke(["uninstall", "--root", str(root)], environ=lab.env())
    assert removal.code == 0
    assert not drill_timer.exists() and not drill_service.exists()


def test_dry_run_shows_the_configuration_without_the_secret_urls(lab, root):
    config = root / "etc" / "k3s-backup" / "config.toml"
    with config.open("a") as out:
        out.write('\n[notify]\nping_url = "https://hc-ping.com/0f5e9c1a-secret-uuid"\n')
    result = setup(lab, root, "--dry-run")
    assert result.code == 0, result.stderr
    assert '| ping_url = "https://hc-ping.com/…"' in result.stdout
    assert "secret-uuid" not in result.stdout + result.stderr


def template_for(lab, root: Path) -> str:
    """`config init`'s template as install.sh writes it, its system paths moved into the lab and
    the temporary root (every comment and line as written)."""
    template = invoke(["config", "init"]).stdout
    ssh = root / "root" / ".ssh"
    for system, lab_path in (
        ('node_name = ""', f'node_name = "{lab_node_name(lab)}"'),
        ('"/var/lib/rancher/k3s/server/db/snapshots"', f'"{lab.snapshot_dir}"'),
        ('"/var/log/k3s-backup.log"', f'"{lab.root / "k3s-backup.log"}"'),
        ('"/var/lib/k3s-backup"', f'"{lab.root / "state"}"'),
        ('"/etc/k3s-backup/recovery.key"', f'"{lab.recovery_key}"'),
        ('bin = "k3s"', f'bin = "{lab.bin_dir / "k3s"}"'),
        ('"/var/lib/rancher/k3s"', f'"{lab.data_dir}"'),
        ('"/root/.ssh/id_ed25519"', f'"{ssh / "id_ed25519"}"'),
        ('"/root/.ssh/known_hosts"', f'"{ssh / "known_hosts"}"'),
    ):
        assert system in template
        template = template.replace(system, lab_path)
    return template


def lab_node_name(lab) -> str:
    return FakeK3sState.load(lab.state_file).node_name


def comments(text: str) -> list[str]:
    return [line[line.index("#") :] for line in text.splitlines() if "#" in line]


def test_setup_on_the_template_asks_for_the_host_instead_of_using_the_sample(lab, root):
    config = root / "etc" / "k3s-backup" / "config.toml"
    config.write_text(template_for(lab, root))
    before = config.read_bytes()
    args = [a for a in setup_args(lab, root) if a not in ("--host", lab.sshd.host)]
    result = invoke(args, environ=lab.env())  # stdin is no terminal: it cannot ask
    assert result.code == 2
    assert "no backup host: pass --host (stdin is not a terminal to ask)" in result.stderr
    assert "backup-host.example" not in result.stdout + result.stderr  # never tried
    assert config.read_bytes() == before


def test_setup_on_the_template_keeps_every_comment_and_then_changes_nothing(lab, root):
    config = root / "etc" / "k3s-backup" / "config.toml"
    template = template_for(lab, root)
    config.write_text(template)
    authorize(lab, root)
    done = setup(lab, root)
    assert done.code == 0, done.stderr
    assert f"Configuration {config}\n      updated (0600)" in done.stdout
    written = config.read_text()
    assert comments(written) == comments(template)  # every comment, in its place and order
    assert f'host = "{lab.sshd.host}"' in written and "backup-host.example" not in written
    lines = list(difflib.ndiff(template.splitlines(), written.splitlines()))
    changed = {line[2:].split(" = ")[0] for line in lines if line[:2] in ("- ", "+ ")}
    assert (
        {"host", "connect_timeout"}
        <= changed
        <= {"host", "mode", "user", "port", "path", "connect_timeout"}  # mode: --mode sftp
    )

    again = setup(lab, root)
    assert again.code == 0, again.stderr
    assert f"Configuration {config}\n      unchanged" in again.stdout
    assert "Nothing changed" in again.stdout
    assert config.read_text() == written  # byte for byte
