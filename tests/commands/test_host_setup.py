"""`k3s-backup host-setup` on the backup host: bad input refused before anything is made; a
real account (useradd as root) with a root-owned key line, the directory it owns, the cron
line of rotation; run again, it changes only what it must."""

from __future__ import annotations

import io
import os
import pwd
import shlex
import stat
import subprocess
import time
from pathlib import Path

import pytest

from k3s_backup.cli import main
from k3s_backup.environment import Environment
from k3s_backup.lab.fake_systemctl import enabled_units
from k3s_backup.lab.lab import Lab
from k3s_backup.lab.sshd import ssh_keygen
from tests.support.service_host import CLUSTER, service_host

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEeezvnfdqQEP+rVAsvIRxIool5ywmyEcOn8T8hctCAd n1"


def host_setup(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["host-setup", *argv], Environment(stdout=out, stderr=err, environ=os.environ))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"--key": "ssh-ed25519"}, "--key must be the node's public key line"),
        ({"--key": "ssh-ed25519 not-base64!"}, "not base64"),
        ({"--key": "ssh-rsa " + KEY.split()[1]}, "is not a ssh-rsa key"),
        ({"--from": '10.0.0.5" ,command="sh'}, "without spaces or quotes"),
        ({"--cluster": "a b"}, "--cluster 'a b' may only contain"),
        ({"--user": "root"}, "a new, unprivileged account name"),
        ({"--dir": "relative/dir"}, "--dir must be an absolute path"),
        ({"--dir": "/srv/back ups"}, "would need quoted"),
    ],
)
def test_bad_input_is_refused_before_anything_is_made(
    change: dict[str, str], said: str, tmp_path: Path
) -> None:
    options = {"--dir": str(tmp_path / "d"), "--key": KEY, "--from": "10.0.0.5"}
    options |= {"--cluster": CLUSTER, "--user": "k3sbnever"} | change
    code, _out, err = host_setup(*[word for pair in options.items() for word in pair])
    assert code == 2 and said in err
    assert not (tmp_path / "d").exists()
    with pytest.raises(KeyError):
        pwd.getpwnam("k3sbnever")


def test_the_account_its_key_lines_directory_and_rotation(lab: Lab, tmp_path: Path) -> None:
    with service_host(lab) as host:
        host.directory.mkdir(mode=0o755)
        older = host.directory / "k3s-lab-20261122-020000-k3s-05-1795312800.zst"
        older.write_bytes(b"a copy the guide's root SFTP wrote")
        said = host.host_setup("append-only", "--keep", "5", "--keep-daily", "7")
        account = pwd.getpwnam(host.user)
        assert account.pw_uid != 0 and account.pw_shell == "/bin/sh"
        assert "rotation on this host" in said
        for path in (host.directory, older):
            assert path.stat().st_uid == account.pw_uid
        assert stat.S_IMODE(host.directory.stat().st_mode) == 0o700
        keys = host.home / ".ssh" / "authorized_keys"
        for path, mode in ((host.home, 0o755), (keys.parent, 0o755), (keys, 0o644)):
            info = path.stat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, mode)  # the account's: no
        [line] = keys.read_text().splitlines()
        assert line.startswith('command="') and ',restrict,from="127.0.0.1" ssh-ed25519 ' in line
        assert f"serve --root {host.directory} --cluster {CLUSTER} --append-only" in line
        cron = host.base / "etc-root" / "etc" / "cron.d" / f"k3s-backup-prune-{CLUSTER}"
        [entry] = [ln for ln in cron.read_text().splitlines() if not ln.startswith("#")]
        assert entry.split()[5] == host.user
        assert "serve-prune" in entry and "--keep 5 --keep-daily 7" in entry

        other = tmp_path / "other_key"
        ssh_keygen(other, "a second node")
        host.host_setup("prune", "--keep", "5", key=other.with_name("other_key.pub"))
        host.host_setup("read-only")  # the first key's mode changed: its line replaced
        lines = keys.read_text().splitlines()
        assert len(lines) == 2
        assert "--read-only" in lines[1] and lines[1].split()[-2] == line.split()[-2]
        assert "--keep 5" in lines[0] and "--append-only" not in lines[0]
        host.host_setup("read-only")
        assert keys.read_text().splitlines() == lines  # the same again: unchanged


def test_where_systemd_runs_rotation_is_a_daily_timer_enabled_there(lab: Lab) -> None:
    with service_host(lab) as host:
        host.host_setup("append-only", "--keep", "5", "--keep-daily", "10")
        cron = host.etc_root / "etc" / "cron.d" / f"k3s-backup-prune-{CLUSTER}"
        assert cron.exists()  # no systemd: a cron file
        host.boot_systemd()
        said = host.host_setup("append-only", "--keep", "5", "--keep-daily", "10")
        units = host.etc_root / "etc" / "systemd" / "system"
        unit = f"k3s-backup-prune-{CLUSTER}"
        assert f"rotation on this host: {unit}.timer (enabled;" in said
        assert not cron.exists()  # one schedule, not two
        assert enabled_units(lab.state_file) == [f"{unit}.timer"]
        service = (units / f"{unit}.service").read_text().splitlines()
        program = host.base / "bin" / "k3s-backup"
        exec_start = (
            f"ExecStart={program} serve-prune --root {host.directory} --cluster {CLUSTER}"
            " --keep 5 --keep-daily 10 --protect-days 7"
        )
        for line in ("Type=oneshot", f"User={host.user}", exec_start):
            assert line in service
        assert f"ReadWritePaths={host.directory}" in service
        timer = (units / f"{unit}.timer").read_text().splitlines()
        for line in ("OnCalendar=*-*-* 03:23:00", "Persistent=true", "WantedBy=timers.target"):
            assert line in timer
        [key_line] = (host.home / ".ssh" / "authorized_keys").read_text().splitlines()
        assert '--append-only --max-per-day 48",restrict' in key_line

        # What the timer runs, as the account: only what retention allows goes.
        doomed, kept = fill_by_receive_day(host.directory)
        before = {p.name: p.read_bytes() for p in host.directory.iterdir()}
        account = pwd.getpwnam(host.user)
        for path in host.directory.iterdir():
            os.chown(path, account.pw_uid, account.pw_gid)
        ran = subprocess.run(
            shlex.split(exec_start.removeprefix("ExecStart=")),
            capture_output=True,
            text=True,
            user=host.user,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr + ran.stdout
        after = {p.name: p.read_bytes() for p in host.directory.iterdir()}
        assert set(before) - set(after) == doomed
        assert {name: before[name] for name in after} == after  # the rest byte-identical
        assert kept <= set(after)


def test_a_host_that_dropped_systemd_gets_cron_and_the_timer_is_disabled_first(lab: Lab) -> None:
    with service_host(lab) as host:
        host.boot_systemd()
        host.host_setup("append-only")
        unit = f"k3s-backup-prune-{CLUSTER}"
        assert enabled_units(lab.state_file) == [f"{unit}.timer"]
        (host.etc_root / "run" / "systemd" / "system").rmdir()  # init is no longer systemd
        said = host.host_setup("append-only")
        cron = host.etc_root / "etc" / "cron.d" / unit
        assert f"rotation on this host: {cron} (" in said
        units = host.etc_root / "etc" / "systemd" / "system"
        assert not (units / f"{unit}.service").exists()
        assert not (units / f"{unit}.timer").exists()
        assert enabled_units(lab.state_file) == []  # not left to fire beside cron


def test_a_timer_systemd_refuses_to_enable_is_exit_2_in_systemctls_words(
    lab: Lab, tmp_path: Path
) -> None:
    refusing = tmp_path / "bin" / "systemctl"
    refusing.parent.mkdir()
    refusing.write_text(
        '#!/bin/sh\ncase "$1" in enable) echo "Failed to enable unit: Access denied" >&2;'
        " exit 1;; esac\nexit 0\n"
    )
    refusing.chmod(0o755)
    environ = lab.env()
    environ["PATH"] = os.pathsep.join([str(refusing.parent), environ["PATH"]])
    with service_host(lab) as host:
        host.boot_systemd()
        code, out, err = host.try_host_setup("append-only", environ=environ)
    timer = f"k3s-backup-prune-{CLUSTER}.timer"
    assert code == 2 and "rotation on this host" not in out
    assert err == (
        f"error: `systemctl enable --now {timer}` failed: Failed to enable unit: Access denied\n"
    )


def fill_by_receive_day(directory: Path) -> tuple[set[str], set[str]]:
    """One copy (and manifest) a day received 0.5 to 14.5 days ago, another cluster's old
    copies (one sharing our prefix), k3s's own snapshot and an operator's file. Returns
    (what --keep 5 --keep-daily 10 --protect-days 7 removes, what it must keep)."""
    now = time.time()
    doomed: set[str] = set()
    kept: set[str] = set()
    for day in range(15):
        when = now - (day + 0.5) * 86400
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
        name = f"{CLUSTER}-{stamp}-k3s-05-{int(when)}.zst"
        for file in (name, name + ".json"):
            (directory / file).write_bytes(b'{"cluster_uid": "u1"}' if file != name else b"z")
            os.utime(directory / file, (when, when))
        (doomed if day >= 10 else kept).update({name, name + ".json"})
    month_ago = now - 30 * 86400
    for foreign in (
        "prod-20261101-020000-k3s-05-1793498400.zst",
        f"{CLUSTER}-staging-20261101-020000-k3s-05-1793498400.zst",
        "etcd-snapshot-k3s-05-1793498400",
        "notes.txt",
    ):
        (directory / foreign).write_bytes(b"not ours to remove")
        os.utime(directory / foreign, (month_ago, month_ago))
        kept.add(foreign)
    return doomed, kept
