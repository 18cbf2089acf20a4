"""`list`, `verify`, `prune`, `fetch` and `restore` over an SSH link that is cut once (a loopback
proxy resets the connection after N bytes, N measured on an uncut run of the same command, in
the direction that carries the command's data: client-to-server, and server-to-client for a
download, whose read requests are a few hundred bytes).
With `retries`, the command's work on the target is done again on a new connection: it
succeeds as if nothing had happened, each retry said once. With `retries = 0` it fails with its
documented exit code and names the target. (`run`'s own case: test_connection_cut.py.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from k3s_backup.lab.lab import Lab
from k3s_backup.plumbing.loopback import wait_for
from tests.support.cli_runner import Result, invoke
from tests.support.faults import Clock, ours
from tests.support.tcp_proxy import CuttingProxy, Direction

SECRET = 600_000  # incompressible bytes in etcd: a download is most of its connection's traffic
RETRY_SAID = "trying again in 7 s (attempt 2 of 3)"


@dataclass
class Blip:
    """The lab's backup host behind a cutting proxy, and commands run through it."""

    lab: Lab
    tmp_path: Path
    proxy: CuttingProxy
    clock: Clock = field(default_factory=Clock)
    waits: list[float] = field(default_factory=list)

    def config(self, retries: int, name: str = "c.toml", **target: object) -> Path:
        target = self.lab.ssh_target(port=self.proxy.port, retries=retries, retry_delay=7, **target)
        k3s = {
            "bin": self.lab.bin_dir / "k3s",
            "data_dir": self.lab.data_dir,
            "config_dir": self.lab.root / "etc",
        }
        return self.lab.write_config(
            self.tmp_path / name,
            targets=[target],
            k3s=k3s,
            restore={"ready_timeout": 60},
        )

    def cli(self, config: Path, *args: str) -> Result:
        return invoke(
            ["--config", str(config), *args],
            environ=self.lab.env(),
            now=self.clock,
            sleep=self.waits.append,
        )

    def settled(self) -> int:
        """How many connections there were, once the proxy saw each end (it sees a command's
        last one end a moment after the command returned)."""
        proxy = self.proxy
        wait_for(lambda: len(proxy.bytes_up_each) == proxy.connections, 10, "connections to end")
        return proxy.connections

    def measured(
        self, config: Path, *args: str, counting: Direction = "up"
    ) -> tuple[Result, list[int]]:
        """The command uncut, and the bytes each of its connections sent upstream (or, counting
        "down", received)."""
        before = self.settled()
        result = self.cli(config, *args)
        assert result.code == 0, result.stderr
        self.settled()
        each = self.proxy.bytes_up_each if counting == "up" else self.proxy.bytes_down_each
        return result, each[before:]

    def cut_once(self, after: int, spare: int = 0, counting: Direction = "up") -> None:
        """Cut the next connection past `spare` more after `after` bytes one way (as
        `measured` counted them); the later ones pass."""
        self.cut_always(after, spare, counting)
        self.proxy.max_cuts = self.proxy.cuts + 1

    def cut_always(self, after: int, spare: int = 0, counting: Direction = "up") -> None:
        self.proxy.cut_after = after
        self.proxy.cut_counting = counting
        self.proxy.max_cuts = None
        self.proxy.uncut_until = self.settled() + spare

    def assert_retried_once(self, result: Result) -> None:
        assert self.proxy.cuts == 1
        assert result.code == 0, result.stderr
        assert self.waits == [7]
        assert result.stderr.count(RETRY_SAID) == 1, result.stderr
        assert "backup-host" in result.stderr


@pytest.fixture
def blip(lab: Lab, tmp_path: Path) -> Iterator[Blip]:
    lab.etcd.put("/registry/secrets/default/big", os.urandom(SECRET))
    with CuttingProxy(("127.0.0.1", lab.sshd.port)) as proxy:
        lab.known_hosts.write_text(lab.sshd.known_hosts_line(port=proxy.port) + "\n")
        yield Blip(lab, tmp_path, proxy)


def backed_up(blip: Blip, runs: int = 1) -> Path:
    config = blip.config(retries=2)
    for _ in range(runs):
        result = blip.cli(config, "run")
        assert result.code == 0, result.stderr
    return config


# what `list` and `verify` say of a target they could not read (exit 1)
UNREADABLE = {
    "list": "error: cannot list backup-host: cannot ",
    "verify": "error: backup-host: *: cannot ",
}


@pytest.mark.parametrize("command", ["list", "verify"])
def test_a_reading_command_survives_a_link_blip(blip: Blip, command: str) -> None:
    config = backed_up(blip, runs=2)
    uncut, [sent] = blip.measured(config, command)
    blip.cut_once(sent * 2 // 3)
    result = blip.cli(config, command)
    blip.assert_retried_once(result)
    assert result.stdout == uncut.stdout  # every copy listed or verified, each once
    assert "FAIL" not in result.stdout


@pytest.mark.parametrize("command", ["list", "verify"])
def test_a_reading_command_without_retries_fails_naming_the_target(
    blip: Blip, command: str
) -> None:
    config = backed_up(blip, runs=2)
    _, [sent] = blip.measured(config, command)
    blip.cut_always(sent * 2 // 3)
    result = blip.cli(blip.config(retries=0, name="once.toml"), command)
    assert blip.proxy.cuts == 1 and blip.waits == []
    assert result.code == 1
    assert UNREADABLE[command] in result.stderr
    assert "Traceback" not in result.stderr


def pruning(blip: Blip) -> tuple[Path, Path]:
    """Three copies on the host, and a config that keeps one there."""
    config = backed_up(blip, runs=3)
    keep_one = blip.config(retries=2, name="keep-one.toml", keep=1)
    return config, keep_one


def on_host(lab: Lab) -> list[str]:
    return sorted(name for name in os.listdir(lab.remote_dir) if not name.startswith("."))


@pytest.mark.parametrize("phase", ["listing", "deleting"])
def test_prune_survives_a_link_blip(blip: Blip, phase: str) -> None:
    """Cut while prune lists the copies (its first connection) or deletes (its second)."""
    config, keep_one = pruning(blip)
    uncut, [listing, deleting] = blip.measured(keep_one, "prune")
    kept = on_host(blip.lab)
    assert len(ours(blip.lab.remote_dir)) == 1
    for _ in range(2):
        assert blip.cli(config, "run").code == 0  # catching up: the local snapshots again
    copies = len(ours(blip.lab.remote_dir))
    assert copies >= 3

    if phase == "listing":
        blip.cut_once(listing * 2 // 3)
    else:
        blip.cut_once(deleting * 2 // 3, spare=1)
    result = blip.cli(keep_one, "prune")
    blip.assert_retried_once(result)
    assert len(ours(blip.lab.remote_dir)) == 1
    newest = sorted(ours(blip.lab.snapshot_dir))[-1]
    assert ours(blip.lab.remote_dir)[0].startswith(newest)  # the newest copy is the one kept
    assert len(on_host(blip.lab)) == len(kept)  # with its manifest and bundle, nothing else
    removed = "backup-host: removed "  # said as each is done
    assert result.stdout.count(removed) == copies - 1  # each said once
    assert uncut.stdout.count(removed) == 2


def test_prune_without_retries_fails_and_keeps_the_newest_copy(blip: Blip) -> None:
    _config, keep_one = pruning(blip)
    _, [listing] = blip.measured(keep_one, "prune", "--dry-run")
    newest = ours(blip.lab.remote_dir)[-1]
    blip.cut_always(listing * 2 // 3)
    once = blip.config(retries=0, name="once.toml", keep=1)
    result = blip.cli(once, "prune")
    assert blip.proxy.cuts == 1 and blip.waits == []
    assert result.code == 1
    assert "error: target backup-host: cannot " in result.stderr
    assert newest in ours(blip.lab.remote_dir)


def downloading(blip: Blip) -> tuple[Path, int, bytes]:
    """A copy on the host only (the local snapshots gone), the bytes its download receives
    (its requests are a few hundred bytes upstream), and the plain snapshot an uncut fetch
    writes."""
    config = backed_up(blip)
    for path in blip.lab.snapshot_dir.iterdir():
        path.unlink()
    for path in (blip.lab.root / "state" / "bundles").iterdir():
        path.unlink()
    out = blip.tmp_path / "uncut.db"
    fetch = ["fetch", "latest", "--from", "backup-host", "--out", str(out)]
    _, received = blip.measured(config, *fetch, counting="down")
    return config, max(received), out.read_bytes()


def test_fetch_survives_a_link_blip_mid_download(blip: Blip) -> None:
    config, download, plain = downloading(blip)
    blip.cut_once(download * 2 // 3, counting="down")  # mid-download
    out = blip.tmp_path / "cut.db"
    result = blip.cli(config, "fetch", "latest", "--from", "backup-host", "--out", str(out))
    blip.assert_retried_once(result)
    assert out.read_bytes() == plain
    assert [p.name for p in blip.tmp_path.iterdir() if p.name.startswith("cut.db")] == ["cut.db"]


def test_fetch_without_retries_fails_and_writes_nothing(blip: Blip) -> None:
    _config, download, _plain = downloading(blip)
    blip.cut_always(download * 2 // 3, counting="down")
    out = blip.tmp_path / "cut.db"
    once = blip.config(retries=0, name="once.toml")
    result = blip.cli(once, "fetch", "latest", "--from", "backup-host", "--out", str(out))
    assert blip.proxy.cuts == 1 and blip.waits == []
    assert result.code == 1
    assert "refusing the copy on backup-host: cannot download" in result.stderr
    assert [p for p in blip.tmp_path.iterdir() if p.name.startswith("cut.db")] == []


def test_restore_survives_a_link_blip_mid_download(blip: Blip) -> None:
    at_backup = blip.lab.etcd.get_all()
    config, download, _plain = downloading(blip)
    blip.lab.etcd.put("/registry/configmaps/default/after", "later")
    blip.cut_once(download * 2 // 3, counting="down")
    result = blip.cli(config, "restore", "latest", "--yes")
    blip.assert_retried_once(result)
    assert "from backup-host" in result.stdout
    assert blip.lab.etcd.get_all() == at_backup


def test_restore_without_retries_fails_and_changes_nothing(blip: Blip) -> None:
    _config, download, _plain = downloading(blip)
    blip.lab.etcd.put("/registry/configmaps/default/after", "later")
    keys = blip.lab.etcd.get_all()
    blip.cut_always(download * 2 // 3, counting="down")
    result = blip.cli(blip.config(retries=0, name="once.toml"), "restore", "latest", "--yes")
    assert blip.proxy.cuts == 1 and blip.waits == []
    assert result.code == 1
    assert "nothing was changed" in result.stderr
    assert "backup-host: cannot download" in result.stderr
    assert blip.lab.etcd.get_all() == keys
