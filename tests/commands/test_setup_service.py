"""`setup` for the default set-up: the node's key runs only `k3s-backup serve` (append-only) on
the backup host. Setup prints the host's two commands filled in; run there as printed (by a
real root, with useradd), they make the next setup succeed."""

from __future__ import annotations

import io
import os
import shlex
import tomllib
from pathlib import Path

from k3s_backup.cli import main
from k3s_backup.environment import Environment
from k3s_backup.lab.lab import Lab
from tests.commands.test_setup import host_fingerprint, template_for
from tests.support.cli_runner import Result, invoke
from tests.support.service_host import ServiceHost, service_host


def setup(lab: Lab, root: Path, host: ServiceHost, *extra: str) -> Result:
    args = ["setup", "--root", str(root), "--host", lab.sshd.host, "--port", str(lab.sshd.port)]
    args += ["--user", host.user, "--path", str(host.directory), *extra]
    return invoke(args, environ=lab.env())


def test_setup_prints_the_host_commands_and_then_backs_up_append_only(
    lab: Lab, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    config = root / "etc" / "k3s-backup" / "config.toml"
    config.parent.mkdir(parents=True)
    lab.write_config(config, targets=None)
    with service_host(lab) as host:
        first = setup(lab, root, host, "--accept-host-key", host_fingerprint(lab))
        assert first.code == 1  # the account does not exist yet: not ready
        public = (root / "root" / ".ssh" / "id_ed25519.pub").read_text().strip()
        [printed] = [ln.strip() for ln in first.stdout.splitlines() if "host-setup" in ln]
        words = shlex.split(printed.removeprefix("2. "))
        assert words[:2] == ["k3s-backup", "host-setup"]
        assert words[words.index("--key") + 1] == public
        assert words[words.index("--from") + 1] == "127.0.0.1"
        assert words[words.index("--mode") + 1] == "append-only"
        assert any("install.sh" in ln for ln in first.stdout.splitlines())

        # On the backup host, as root, as printed (plus where this test keeps things).
        extra = ["--home", str(host.home), "--program", str(host.base / "bin" / "k3s-backup")]
        extra += ["--root", str(host.base / "etc-root")]
        out, err = io.StringIO(), io.StringIO()
        code = main([*words[1:], *extra], Environment(stdout=out, stderr=err, environ=os.environ))
        assert code == 0, err.getvalue()

        done = setup(lab, root, host)
        assert done.code == 0, done.stderr + done.stdout
        assert "k3s-backup serve (append-only)" in done.stdout
        written = tomllib.loads(config.read_text())
        assert written["targets"][0]["mode"] == "append-only"
        assert [p.name for p in host.directory.iterdir() if p.name.endswith(".zst")]
        cron = host.base / "etc-root" / "etc" / "cron.d" / "k3s-backup-prune-k3s-lab"
        assert f"{host.user} " in cron.read_text() and "serve-prune" in cron.read_text()


def test_on_install_shs_template_setup_sets_up_the_service_too(lab: Lab, tmp_path: Path) -> None:
    """install.sh writes `config init`'s template: its target is no set-up yet, so setup
    gives it the append-only service (and the account's user), not the guide's root SFTP."""
    root = tmp_path / "root"
    config = root / "etc" / "k3s-backup" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(template_for(lab, root))
    args = ["setup", "--root", str(root), "--host", lab.sshd.host, "--port", str(lab.sshd.port)]
    args += ["--path", str(lab.remote_dir), "--accept-host-key", host_fingerprint(lab)]
    first = invoke(args, environ=lab.env())
    assert first.code == 1  # no account there yet
    [printed] = [ln.strip() for ln in first.stdout.splitlines() if "host-setup" in ln]
    words = shlex.split(printed.removeprefix("2. "))
    assert words[words.index("--mode") + 1] == "append-only"
    assert words[words.index("--user") + 1] == "k3s-backup"
    assert "refused the key" in first.stdout and "k3s-backup@" in first.stdout
