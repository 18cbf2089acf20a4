"""The connection to `k3s-backup serve` cut in the middle of a copy (a loopback proxy that
resets both sides): the run exits 3, nothing partial carries a final name, the service removes
its temporary, the copies there are intact; the next run catches up and verifies."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3s_backup.lab.lab import Lab
from tests.support.faults import Clock, cli, ours
from tests.support.service_host import ServiceHost, service_host
from tests.support.tcp_proxy import CuttingProxy

SECRET = 600_000  # incompressible: the copy is most of the connection's traffic


@pytest.fixture
def host(lab: Lab) -> Iterator[ServiceHost]:
    with service_host(lab) as made:
        made.host_setup("append-only")
        yield made


def test_a_cut_mid_copy_loses_nothing_and_the_next_run_catches_up(
    lab: Lab, host: ServiceHost, tmp_path: Path
) -> None:
    lab.etcd.put("/registry/secrets/default/big", os.urandom(SECRET))
    with CuttingProxy(("127.0.0.1", lab.sshd.port)) as proxy:
        lab.known_hosts.write_text(lab.sshd.known_hosts_line(port=proxy.port) + "\n")
        target = host.target("append-only", port=proxy.port)
        config = lab.write_config(tmp_path / "c.toml", targets=[target])
        clock = Clock()
        assert cli(lab, config, clock, "run").code == 0
        [first] = [n for n in ours(host.directory) if n.endswith(".zst")]
        kept = hashlib.sha256((host.directory / first).read_bytes()).hexdigest()

        proxy.cut_after = proxy.bytes_up // 2  # inside the copy: most of what a run sends
        result = cli(lab, config, clock, "run")
        assert proxy.cuts == 1
        assert result.code == 3, result.stderr
        assert "backup-host" in result.stderr and "Traceback" not in result.stderr
        assert [n for n in ours(host.directory) if n.endswith(".zst")] == [first]
        assert hashlib.sha256((host.directory / first).read_bytes()).hexdigest() == kept

        proxy.cut_after = None
        assert cli(lab, config, clock, "run").code == 0
        copies = [n for n in ours(host.directory) if n.endswith(".zst")]
        assert len(copies) == 3  # the cut night's copy caught up
        assert [p for p in os.listdir(host.directory) if ".partial-" in p] == []
        verified = cli(lab, config, clock, "verify")
        assert verified.code == 0, verified.stdout
