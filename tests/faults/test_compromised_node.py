"""An intruder with root on the node holds the node's key to the backup host. Behind
`k3s-backup serve` (host-setup's forced command, a real unprivileged account, the lab's real
sshd) every attempt to run anything else, forward, use SFTP, or forge the service's own requests
is refused, and every copy there stays byte-identical (docs/reliability.md, "Compromised node")."""

from __future__ import annotations

import hashlib
import io
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3s_backup.errors import TargetError
from k3s_backup.lab.lab import Lab
from k3s_backup.lab.sshd import ssh_keygen
from k3s_backup.service import protocol
from k3s_backup.service.client import Client, ServiceRefused
from k3s_backup.service.protocol import ProtocolError
from k3s_backup.ssh.session import SshSession
from k3s_backup.targets.base import put_bytes
from k3s_backup.targets.factory import open_target
from tests.commands.test_restore import Clock, write_config
from tests.support.cli_runner import Result, invoke
from tests.support.service_host import CLUSTER, ServiceHost, service_host

OLD = "k3s-lab-20261122-020000-k3s-05-1795312800"
NEW = "k3s-lab-20261123-020000-k3s-05-1795399200"
FUTURE = "k3s-lab-20991123-020000-k3s-05-4099000000"


def digests(directory: Path) -> dict[str, str]:
    """Every file there, by name, with its SHA-256 (read as root, no project code)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@pytest.fixture
def host(lab: Lab) -> Iterator[ServiceHost]:
    with service_host(lab) as made:
        made.host_setup("append-only", "--keep", "1")
        config = made.config("append-only")
        with open_target(config, CLUSTER) as target:
            for name in (OLD, NEW):
                put_bytes(target, name, f"the copy {name}".encode() * 1000)
                put_bytes(target, name + ".json", b'{"cluster_uid": "u1"}')
        yield made


@pytest.fixture
def before(host: ServiceHost) -> dict[str, str]:
    held = digests(host.directory)
    assert sorted(held) == sorted([OLD, NEW, OLD + ".json", NEW + ".json"])
    return held


def test_the_key_runs_no_command_but_the_service(host: ServiceHost, before: dict[str, str]) -> None:
    for command in (["id"], ["rm", "-rf", str(host.directory)], ["sh", "-c", "echo pwned"]):
        done = host.ssh(*command)
        assert b"uid=" not in done.stdout and b"pwned" not in done.stdout
        hello = protocol.read_header(io.BytesIO(done.stdout), protocol.MAX_REPLY)
        assert hello is not None and hello["service"] == "k3s-backup"  # the service, only
    assert digests(host.directory) == before


def test_no_forwarding_of_any_kind(host: ServiceHost, before: dict[str, str]) -> None:
    sshd = host.lab.sshd
    stdio = host.ssh("-W", f"{sshd.host}:{sshd.port}")  # what -L opens for each connection
    assert stdio.returncode != 0 and b"prohibited" in stdio.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    remote = host.ssh("-o", "ExitOnForwardFailure=yes", "-R", f"{port}:127.0.0.1:22", "true")
    assert remote.returncode != 0 and b"forwarding failed" in remote.stderr.lower()
    assert digests(host.directory) == before


@pytest.mark.parametrize(
    "batch",
    [
        "rm {dir}/{new}",
        "rename {dir}/{old} {dir}/{new}",
        "put {local} {dir}/{new}",
        "chmod 666 {dir}/{new}",
        "symlink /etc/passwd {dir}/{new}.json",
        "get /etc/shadow {out}",
        "put {local} /tmp/planted",
        "ls /",
    ],
)
def test_no_sftp(host: ServiceHost, before: dict[str, str], batch: str, tmp_path: Path) -> None:
    local = tmp_path / "garbage"
    local.write_bytes(b"garbage")
    line = batch.format(dir=host.directory, new=NEW, old=OLD, local=local, out=tmp_path / "o")
    (tmp_path / "batch").write_text(line + "\n")
    sshd = host.lab.sshd
    command = ["sftp", "-b", str(tmp_path / "batch"), "-i", str(sshd.client_key)]
    command += ["-P", str(sshd.port), "-o", f"UserKnownHostsFile={host.lab.known_hosts}"]
    command += ["-o", "BatchMode=yes", f"{host.user}@{sshd.host}"]
    done = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode != 0
    assert not (tmp_path / "o").exists() and not Path("/tmp/planted").exists()
    assert digests(host.directory) == before


@pytest.fixture
def forged(host: ServiceHost) -> Iterator[tuple[Client, SshSession]]:
    """The service's own protocol, spoken by hand over the node's key."""
    session = SshSession.from_config("intruder", host.config("append-only"))
    channel = session.open_channel(["anything"], timeout=30, combine_stderr=False)
    client = Client(channel.makefile("rb"), channel.makefile_stdin("wb"))
    client.handshake()
    yield client, session
    session.close()


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"op": "delete", "name": NEW}, "append-only"),
        ({"op": "delete", "name": OLD}, "append-only"),
        ({"op": "delete", "name": NEW + ".json"}, "append-only"),
        ({"op": "get", "name": "../../../etc/shadow", "limit": 1 << 20}, "bad-name"),
        ({"op": "get", "name": "/etc/shadow", "limit": 1 << 20}, "bad-name"),
        ({"op": "stat", "name": NEW + "\0"}, "bad-name"),
        ({"op": "sha256", "name": f"{NEW}/../../x"}, "bad-name"),
        ({"op": "get", "name": NEW + "x" * 300, "limit": 1}, "bad-name"),
        ({"op": "put", "name": f".{NEW}.partial-00000000"}, "bad-name"),
        ({"op": "put", "name": NEW, "size": 1 << 62}, "too-large"),
        ({"op": "put", "name": FUTURE}, "future"),
        ({"op": "chmod", "name": NEW}, "unknown-op"),
    ],
)
def test_forged_requests_are_refused(
    forged: tuple[Client, SshSession],
    host: ServiceHost,
    before: dict[str, str],
    request_: dict[str, object],
    code: str,
) -> None:
    client, _session = forged
    with pytest.raises(ServiceRefused) as refused:
        client.call(request_)
    assert refused.value.code == code
    assert client.stat(NEW) is not None  # the connection stays in step after a refusal
    assert digests(host.directory) == before


def test_overwrite_and_truncate_of_an_existing_copy_are_refused(
    forged: tuple[Client, SshSession], host: ServiceHost, before: dict[str, str]
) -> None:
    client, _session = forged
    for body in (b"", b"ransom note"):  # an empty copy is a truncation
        digest = hashlib.sha256(body).hexdigest()
        with pytest.raises(ServiceRefused, match="never overwrites a copy"):
            client.put(NEW, io.BytesIO(body).read, lambda: digest)  # noqa: B023
    assert digests(host.directory) == before


def test_a_copy_that_does_not_hash_as_claimed_gets_no_name(
    forged: tuple[Client, SshSession], host: ServiceHost, before: dict[str, str]
) -> None:
    client, _session = forged
    name = "k3s-lab-20261124-020000-k3s-05-1795485600"
    with pytest.raises(ServiceRefused, match="does not verify"):
        client.put(name, io.BytesIO(b"garbage").read, lambda: "0" * 64)
    assert digests(host.directory) == before  # no temporary left either


@pytest.mark.parametrize(
    "garbage",
    [
        struct.pack(">I", 0x7FFFFFFF),  # a huge length, then nothing
        struct.pack(">I", 5) + b"nojsn",
        struct.pack(">I", 2) + b"[]",
        protocol.encode({"op": "get", "name": NEW, "limit": -1}),  # unframed
        struct.pack(">I", 100_000) + b"x" * 100_000,  # over the request cap
    ],
)
def test_garbage_frames_end_the_connection_and_change_nothing(
    forged: tuple[Client, SshSession], host: ServiceHost, before: dict[str, str], garbage: bytes
) -> None:
    client, _session = forged
    client.tx.write(garbage)
    client.tx.flush()
    with pytest.raises((ServiceRefused, ProtocolError)):
        client.stat(NEW)
    assert digests(host.directory) == before


def installed_rotation(host: ServiceHost) -> list[str]:
    """The command of the cron line host-setup installed (this host runs no systemd)."""
    cron = host.etc_root / "etc" / "cron.d" / f"k3s-backup-prune-{CLUSTER}"
    [line] = [ln for ln in cron.read_text().splitlines() if not ln.startswith("#")]
    words = line.split()
    assert words[5] == host.user
    return words[6 : words.index("2>&1")]


def test_a_burst_of_good_looking_copies_pushes_no_real_copy_out(
    host: ServiceHost, before: dict[str, str]
) -> None:
    """keep + 10 copies a host cannot tell from real ones (our names, the cluster's claimed
    identity): the rate limit stops the burst, and the host's own rotation, as installed, keeps
    every copy it received before it."""
    host.host_setup("append-only", "--keep", "1", "--max-per-day", "12")
    now = time.time()
    forged = [
        f"{CLUSTER}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now - 60 * i))}-k3s-05-"
        f"{int(now) - 60 * i}"
        for i in range(1 + 10)
    ]
    with open_target(host.config("append-only"), CLUSTER) as target:
        for name in forged[:10]:  # with the 2 copies there: 12 in 24 hours
            put_bytes(target, name, b"a good-looking copy")
            put_bytes(target, name + ".json", b'{"cluster_uid": "u1"}')
        with pytest.raises(TargetError, match="the most it accepts"):
            put_bytes(target, forged[10], b"one more")
    rotate = subprocess.run(
        installed_rotation(host), capture_output=True, text=True, user=host.user, timeout=120
    )
    assert rotate.returncode == 0, rotate.stderr + rotate.stdout
    after = digests(host.directory)
    assert {name: after.get(name) for name in before} == before  # byte-identical
    assert forged[10] not in after


def test_a_restore_key_reads_and_writes_nothing(
    host: ServiceHost, before: dict[str, str], tmp_path: Path
) -> None:
    key = tmp_path / "restore_key"
    ssh_keygen(key, "replacement-node")
    host.host_setup("read-only", key=key.with_name("restore_key.pub"))
    config = host.config("append-only", identity_file=key)
    with open_target(config, CLUSTER) as target:
        out = io.BytesIO()
        target.get(NEW, out, 1 << 20)
        assert hashlib.sha256(out.getvalue()).hexdigest() == before[NEW]
        with pytest.raises(TargetError, match="may only read"):
            put_bytes(target, "k3s-lab-20261124-020000-k3s-05-1795485600", b"x")
    assert digests(host.directory) == before


def test_run_verify_fetch_restore_and_host_rotation_in_the_append_only_set_up(
    lab: Lab, tmp_path: Path
) -> None:
    """The restricted set-up still does the whole job: the node ships and verifies, deletes
    nothing there; the host's own serve-prune rotates; a node that lost every local copy
    fetches and restores from the host."""
    with service_host(lab) as made:
        made.host_setup("append-only", "--keep", "2")
        config = write_config(lab, tmp_path / "config.toml", targets=[made.target("append-only")])
        clock = Clock()

        def cli(*args: str) -> Result:
            return invoke(["--config", str(config), *args], environ=lab.env(), now=clock)

        lab.etcd.put("/registry/configmaps/default/app", "v1")
        for _ in range(4):
            result = cli("run")
            assert result.code == 0, result.stderr
        at_backup = lab.etcd.get_all()
        copies = sorted(p.name for p in made.directory.iterdir() if p.name.endswith(".zst"))
        assert len(copies) == 4  # the node deleted none
        assert cli("verify").code == 0
        program = made.base / "bin" / "k3s-backup"
        rotate = ["serve-prune", "--root", str(made.directory), "--cluster", CLUSTER, "--keep", "2"]
        prune = subprocess.run(
            [str(program), *rotate],
            capture_output=True,
            text=True,
            user=made.user,
        )
        assert prune.returncode == 0, prune.stderr
        left = sorted(p.name for p in made.directory.iterdir() if p.name.endswith(".zst"))
        assert left == copies[-2:]  # the newest two, by the host's own rotation
        lab.etcd.put("/registry/configmaps/default/app", "v2")
        for path in lab.snapshot_dir.iterdir():
            path.unlink()
        fetched = tmp_path / "fetched.db"
        result = cli("fetch", "latest", "--out", str(fetched), "--from", "backup-host")
        assert result.code == 0, result.stderr
        result = cli("restore", "latest", "--yes")
        assert result.code == 0, result.stderr
        assert lab.etcd.get_all() == at_backup
