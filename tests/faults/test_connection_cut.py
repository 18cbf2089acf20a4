"""The SSH connection to the backup host cut at several points of a run (a loopback proxy that
resets both sides after N bytes): exit 3, nothing partial under a final name, the copies already
there intact, the snapshot kept locally; the next run catches up and cleans the temporary.
With retries configured, a run tries an unreachable target again: a blip costs nothing.

One cut mid-copy is in tests/commands/test_run.py
(test_connection_cut_mid_upload_leaves_no_final_name_then_next_run_succeeds); here the cut
moves through the whole connection, measured on a first uncut run through the same proxy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k3s_backup.lab.lab import Lab
from k3s_backup.plumbing.loopback import wait_for
from tests.support.cli_runner import Result, invoke
from tests.support.faults import (
    Clock,
    assert_final_names_whole,
    cli,
    ours,
    snapshots,
    temporaries,
)
from tests.support.tcp_proxy import CuttingProxy

SECRET = 600_000  # incompressible bytes in etcd: the copy is most of the connection's traffic


def cut_point(point: str, full_run: int, copy_size: int) -> int:
    """Bytes from the client after which the connection is cut; `full_run` is what one whole
    run sent, `copy_size` what its copy weighs (the rest is SSH, listing, manifest, bundle)."""
    overhead = full_run - copy_size
    return {
        "key-exchange": 600,  # banner and KEXINIT only
        "authentication": 1_500,
        "start-of-copy": overhead // 3 + copy_size // 50,
        "middle-of-copy": overhead // 3 + copy_size // 2,
        "end-of-copy": overhead // 3 + copy_size - 2_000,
        "manifest-bundle-rotation": full_run - overhead // 3,
    }[point]


@pytest.fixture
def proxy(lab: Lab) -> Iterator[CuttingProxy]:
    with CuttingProxy(("127.0.0.1", lab.sshd.port)) as started:
        lab.known_hosts.write_text(lab.sshd.known_hosts_line(port=started.port) + "\n")
        yield started


@pytest.mark.parametrize(
    "point",
    [
        "key-exchange",
        "authentication",
        "start-of-copy",
        "middle-of-copy",
        "end-of-copy",
        "manifest-bundle-rotation",
    ],
)
def test_cut_connection_at_each_point_loses_nothing(
    lab: Lab, tmp_path: Path, proxy: CuttingProxy, point: str
) -> None:
    lab.etcd.put("/registry/secrets/default/big", os.urandom(SECRET))
    config = lab.write_config(tmp_path / "c.toml", targets=[lab.ssh_target(port=proxy.port)])
    clock = Clock()
    assert cli(lab, config, clock, "run").code == 0
    full_run = proxy.bytes_up
    [first] = ours(lab.remote_dir)
    kept = (lab.remote_dir / first).read_bytes()

    proxy.cut_after = cut_point(point, full_run, len(kept))
    result = cli(lab, config, clock, "run")
    assert proxy.cuts == 1
    if result.code == 0:  # the cut came after the last byte that mattered (the final close)
        assert point == "manifest-bundle-rotation"
    else:
        assert result.code == 3, result.stderr
        assert "backup-host" in result.stderr and "PARTIAL" in result.stderr
    assert_final_names_whole(lab)
    assert (lab.remote_dir / first).read_bytes() == kept
    assert len(ours(lab.snapshot_dir)) == 2  # the new snapshot is kept locally

    proxy.cut_after = None
    result = cli(lab, config, clock, "run")
    assert result.code == 0, result.stderr
    assert snapshots(lab.remote_dir) == ours(lab.snapshot_dir)  # caught up: none missing
    assert temporaries(lab.remote_dir) == []
    verified = cli(lab, config, clock, "verify")
    assert verified.code == 0, verified.stdout


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_cut_during_a_download_fails_cleanly_and_writes_nothing(
    lab: Lab, tmp_path: Path, proxy: CuttingProxy
) -> None:
    """`fetch` (as `restore` downloads) over a link cut half-way through its read requests:
    a clear error, no traceback from paramiko's prefetch thread, no file at --out."""
    for index in range(8):  # a copy of some MB: many read requests to cut in the middle of
        lab.etcd.put(f"/registry/secrets/default/big-{index}", os.urandom(SECRET))
    config = lab.write_config(tmp_path / "c.toml", targets=[lab.ssh_target(port=proxy.port)])
    clock = Clock()
    assert cli(lab, config, clock, "run").code == 0

    def fetch(out: Path) -> Result:
        from_host = ["--from", "backup-host", "--out", str(out)]
        return cli(lab, config, clock, "fetch", "latest", *from_host)

    def all_ended() -> int:
        """How many connections there were, once the proxy saw each end (it sees the run's or
        a fetch's last one end a moment after the command returned)."""
        wait_for(lambda: len(proxy.bytes_up_each) == proxy.connections, 10, "connections to end")
        return proxy.connections

    ended = all_ended()
    assert fetch(tmp_path / "whole.db").code == 0  # the listing and the download: one link
    all_ended()
    # Counted from the server: a download's read requests are a few bytes each, the copy many
    # MB, so two thirds of what came down falls inside the copy, well past the listing.
    download = max(proxy.bytes_down_each[ended:])
    proxy.cut_counting = "down"
    proxy.cut_after = download * 2 // 3
    out = tmp_path / "cut.db"
    result = fetch(out)
    assert proxy.cuts == 1
    assert result.code == 1, result.stderr
    assert "backup-host" in result.stderr and "Traceback" not in result.stderr
    assert "cannot download" in result.stderr  # the cut came inside the copy, not the listing
    assert "backup-host: backup-host" not in result.stderr  # the target named once
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith("cut.db")] == []


def retrying(lab: Lab, tmp_path: Path, port: int) -> Path:
    target = lab.ssh_target(port=port, retries=2, retry_delay=7)
    return lab.write_config(tmp_path / "retrying.toml", targets=[target])


def run_json(lab: Lab, config: Path, waits: list[float]) -> tuple[Result, dict[str, Any]]:
    result = invoke(
        ["--config", str(config), "run", "--json"],
        environ=lab.env(),
        now=Clock(),
        sleep=waits.append,
    )
    return result, json.loads(result.stdout)


def test_a_link_blip_is_tried_again_and_the_night_succeeds(lab: Lab, tmp_path: Path) -> None:
    lab.etcd.put("/registry/secrets/default/big", os.urandom(SECRET))
    with CuttingProxy(("127.0.0.1", lab.sshd.port), cut_after=20_000, max_cuts=1) as proxy:
        lab.known_hosts.write_text(lab.sshd.known_hosts_line(port=proxy.port) + "\n")
        waits: list[float] = []
        result, report = run_json(lab, retrying(lab, tmp_path, proxy.port), waits)
    assert proxy.cuts == 1
    assert result.code == 0, result.stderr
    assert waits == [7]
    assert "trying again in 7 s (attempt 2 of 3)" in result.stderr
    assert report["targets"]["backup-host"]["attempts"] == 2
    assert snapshots(lab.remote_dir) == ours(lab.snapshot_dir)
    assert temporaries(lab.remote_dir) == []
    assert_final_names_whole(lab)


def test_a_host_down_for_good_fails_after_every_attempt(lab: Lab, tmp_path: Path) -> None:
    lab.sshd.stop()
    waits: list[float] = []
    result, report = run_json(lab, retrying(lab, tmp_path, lab.sshd.port), waits)
    assert result.code == 3, result.stderr
    assert waits == [7, 7], result.stderr
    assert "target backup-host failed (after 3 attempts)" in result.stderr
    assert "Connection refused" in result.stderr
    assert report["targets"]["backup-host"] | {"error": None} == {
        "ok": False, "error": None, "shipped": [], "removed": [], "locked": {}, "copies": 0,
        "bytes": 0,
        "newest": None, "newest_unix": None, "attempts": 3,
    }  # fmt: skip
    assert len(ours(lab.snapshot_dir)) == 1  # kept for the next night


def test_a_refusal_by_the_host_is_not_tried_again(lab: Lab, tmp_path: Path) -> None:
    lab.sshd.authorized_keys.write_text("")  # our key removed there
    waits: list[float] = []
    result, report = run_json(lab, retrying(lab, tmp_path, lab.sshd.port), waits)
    assert result.code == 3
    assert waits == []
    assert "refused the key" in result.stderr
    assert report["targets"]["backup-host"]["attempts"] == 1
