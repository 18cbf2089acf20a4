"""`k3s-backup serve`'s rules, on a real directory over real pipes: what it stores, how, and
what it refuses. (Over SSH, as the node's own key: tests/faults/test_compromised_node.py.)"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from k3s_backup.policy.retention import GfsRules
from k3s_backup.service import protocol
from k3s_backup.service.client import Client, ServiceRefused
from k3s_backup.service.protocol import ProtocolError
from tests.service.support import NEW, OLD, OTHER_NODE, served
from tests.support.faults import small_tmpfs


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(served_client: Client, name: str, data: bytes, claimed: str | None = None) -> Any:
    return served_client.put(name, io.BytesIO(data).read, lambda: claimed or sha(data))


def test_a_copy_is_stored_whole_0600_and_hashed_by_the_host(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)  # several data frames
    with served(tmp_path) as s:
        reply = put(s.client, NEW, data)
        assert (reply["size"], reply["sha256"], reply["existed"]) == (len(data), sha(data), False)
        assert s.client.sha256(NEW) == sha(data)
        out = bytearray()
        assert s.client.get(NEW, out.extend, len(data)) == len(data)
    assert bytes(out) == data == (tmp_path / NEW).read_bytes()
    assert stat.S_IMODE((tmp_path / NEW).stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == [NEW]


def test_the_temporary_is_0600_while_written_and_gone_when_the_node_vanishes(
    tmp_path: Path,
) -> None:
    with served(tmp_path) as s:
        s.client.call({"op": "put", "name": NEW})  # "go on": the temporary exists
        protocol.write_frame(s.node_tx, b"half a copy")
        s.node_tx.flush()
        [temp] = os.listdir(tmp_path)
        assert temp.startswith(f".{NEW}.partial-")
        assert stat.S_IMODE((tmp_path / temp).stat().st_mode) == 0o600
        s.close()  # the connection ends mid-upload
    assert os.listdir(tmp_path) == []
    assert s.codes == [1]


def test_a_failing_source_aborts_and_leaves_nothing(tmp_path: Path) -> None:
    def failing(size: int) -> bytes:
        raise OSError(5, "Input/output error")

    with served(tmp_path) as s:
        with pytest.raises(OSError, match="Input/output error"):
            s.client.put(NEW, failing, lambda: "0" * 64)
        assert s.client.list() == []  # still in step
    assert os.listdir(tmp_path) == []


def test_the_same_bytes_again_succeed_other_bytes_never_replace(tmp_path: Path) -> None:
    with served(tmp_path) as s:
        put(s.client, NEW, b"the copy")
        assert put(s.client, NEW, b"the copy")["existed"] is True  # a retried upload
        with pytest.raises(ServiceRefused, match="never overwrites") as refused:
            put(s.client, NEW, b"")
        assert refused.value.code == "exists"
    assert (tmp_path / NEW).read_bytes() == b"the copy" and os.listdir(tmp_path) == [NEW]


def test_a_full_disk_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "small"
    directory.mkdir()
    with small_tmpfs(directory, "1m"):
        (directory / OLD).write_bytes(b"an older copy")
        with served(directory) as s:
            with pytest.raises(ServiceRefused) as announced:
                s.client.call({"op": "put", "name": NEW, "size": 2 << 20})
            assert announced.value.code == "no-space"
            with pytest.raises(ServiceRefused, match="disk is full") as streamed:
                put(s.client, NEW, os.urandom(2 << 20))  # a stream: no size said
            assert streamed.value.code == "no-space"
        assert os.listdir(directory) == [OLD]
        assert (directory / OLD).read_bytes() == b"an older copy"


def test_a_copy_over_the_hosts_limit_is_refused(tmp_path: Path) -> None:
    with (
        served(tmp_path, max_size=1000) as s,
        pytest.raises(ServiceRefused, match="more than 1000 bytes"),
    ):
        put(s.client, NEW, b"x" * 1001)
    assert os.listdir(tmp_path) == []


def test_a_symlink_planted_under_our_name_is_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"root's secret")
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / NEW).symlink_to(secret)
    with served(directory) as s:
        assert s.client.stat(NEW) is None
        with pytest.raises(ServiceRefused, match="not a regular file"):
            s.client.get(NEW, bytearray().extend, 1 << 20)
        with pytest.raises(ServiceRefused, match="not a regular file"):
            s.client.sha256(NEW)
        assert s.client.list() == []


def test_a_get_bounded_by_the_limit_asked(tmp_path: Path) -> None:
    (tmp_path / NEW).write_bytes(b"x" * 5000)
    with served(tmp_path) as s:
        with pytest.raises(ServiceRefused, match="holds 5000 bytes, more than 4999") as refused:
            s.client.get(NEW, bytearray().extend, 4999)
        assert refused.value.code == "too-large"


def test_the_listing_leaves_out_the_services_own_temporaries(tmp_path: Path) -> None:
    (tmp_path / NEW).write_bytes(b"x")
    (tmp_path / f".{NEW}.partial-0123abcd").write_bytes(b"half")
    (tmp_path / "etcd-snapshot-k3s-05-1795399200").write_bytes(b"k3s's own")
    with served(tmp_path) as s:
        names = sorted(name for name, _size in s.client.list())
    assert names == sorted([NEW, "etcd-snapshot-k3s-05-1795399200"])


def test_prune_mode_deletes_only_what_the_hosts_retention_removes(tmp_path: Path) -> None:
    lost = "k3s-lab-20261120-020000-k3s-05-1795140000"  # another cluster's, under our name
    for name, uid in ((lost, "u0"), (OLD, "u1"), (NEW, "u1"), (OTHER_NODE, "u1")):
        (tmp_path / name).write_bytes(b"copy")
        (tmp_path / (name + ".json")).write_text(f'{{"cluster_uid": "{uid}"}}')
    with served(tmp_path, mode=protocol.PRUNE, rules=GfsRules(last=1)) as s:
        for kept in (NEW, NEW + ".json", OTHER_NODE, lost, lost + ".json"):
            with pytest.raises(ServiceRefused, match="retention keeps it"):
                s.client.delete(kept)
        s.client.delete(OLD)  # an older copy of the newest lineage, on the same node
        s.client.delete(OLD + ".json")  # its manifest, once the copy is gone
        s.client.delete(OLD)  # gone already: not an error
    left = {lost, NEW, OTHER_NODE}
    assert sorted(os.listdir(tmp_path)) == sorted(left | {n + ".json" for n in left})


def test_append_and_read_only_modes(tmp_path: Path) -> None:
    (tmp_path / OLD).write_bytes(b"copy")
    with (
        served(tmp_path, mode=protocol.APPEND_ONLY) as s,
        pytest.raises(ServiceRefused, match="deletes nothing"),
    ):
        s.client.delete(OLD)
    with served(tmp_path, mode=protocol.READ_ONLY) as s:
        with pytest.raises(ServiceRefused, match="may only read"):
            put(s.client, NEW, b"x")
        assert s.client.stat(OLD) is not None
    assert os.listdir(tmp_path) == [OLD]


def test_another_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    with served(tmp_path, handshake=False) as s:
        hello = protocol.read_header(s.node_rx, protocol.MAX_REPLY)
        assert hello is not None and hello["version"] == protocol.VERSION
        protocol.write_header(s.node_tx, {"version": 2})
        reply = protocol.read_header(s.node_rx, protocol.MAX_REPLY)
        assert reply is not None and reply["error"] == "protocol"
        assert "install the same k3s-backup on both" in reply["message"]
    assert s.codes == [1]


def test_a_missing_directory_is_said_instead_of_the_hello(tmp_path: Path) -> None:
    with (
        served(tmp_path / "gone", handshake=False) as s,
        pytest.raises(ServiceRefused, match="does not exist on the backup host"),
    ):
        s.client.handshake()


def test_a_field_of_the_wrong_type_is_a_protocol_error(tmp_path: Path) -> None:
    (tmp_path / NEW).write_bytes(b"x")
    with served(tmp_path) as s:
        with pytest.raises(ServiceRefused) as refused:
            s.client.call({"op": "get", "name": NEW, "limit": True})
        assert refused.value.code == "protocol"
        with pytest.raises((ProtocolError, BrokenPipeError)):  # and the service is gone
            s.client.list()


def test_a_hang_up_mid_upload_removes_the_temporary(tmp_path: Path) -> None:
    """sshd may hang up the service (SIGHUP) when the connection goes: the process, as sshd
    starts it, unwinds and removes the upload's temporary."""
    service = [sys.executable, "-m", "k3s_backup.service", "serve", "--root", str(tmp_path)]
    with subprocess.Popen(
        [*service, "--cluster", "k3s-lab", "--append-only"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        client = Client(process.stdout, process.stdin)
        client.handshake()
        client.call({"op": "put", "name": NEW})  # "go on": the temporary exists
        assert len(os.listdir(tmp_path)) == 1
        process.send_signal(signal.SIGHUP)
        assert process.wait(timeout=30) == 128 + signal.SIGHUP
    assert os.listdir(tmp_path) == []


def test_at_most_max_per_day_new_copies_by_the_hosts_clock(tmp_path: Path) -> None:
    day = [f"k3s-lab-20261123-0{h}0000-k3s-05-{1795399200 + h * 3600}" for h in range(4)]
    (tmp_path / OLD).write_bytes(b"received two days ago")
    two_days_ago = time.time() - 2 * 86400
    os.utime(tmp_path / OLD, (two_days_ago, two_days_ago))
    with served(tmp_path, max_per_day=3) as s:
        for name in day[:3]:
            put(s.client, name, b"copy")
        put(s.client, day[0] + ".json", b"{}")  # a manifest is no new copy
        assert put(s.client, day[0], b"copy")["existed"]  # nor a retried upload
        with pytest.raises(ServiceRefused, match="received 3 copies of k3s-lab in the last 24"):
            put(s.client, day[3], b"a burst's fourth")
    assert not (tmp_path / day[3]).exists()
    assert sorted(os.listdir(tmp_path)) == sorted([OLD, *day[:3], day[0] + ".json"])


def test_prune_mode_never_deletes_a_copy_received_within_the_window(tmp_path: Path) -> None:
    for name in (OLD, NEW):
        (tmp_path / name).write_bytes(b"copy")
    with (
        served(tmp_path, mode=protocol.PRUNE, rules=GfsRules(last=1), protect_days=1) as s,
        pytest.raises(ServiceRefused, match="retention keeps it"),
    ):
        s.client.delete(OLD)
    assert (tmp_path / OLD).read_bytes() == b"copy"
