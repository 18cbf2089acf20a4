"""`run` reads its snapshot once (issue 20): the SHA-256 trailer of the file K3s wrote is
checked as the first upload reads it, not in a read of its own before. A bad snapshot still
ships nothing: on every kind of target no copy, manifest, bundle or temporary of it is left,
and no local manifest records it; with no target reached it is checked all the same."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3s_backup.lab.lab import Lab
from k3s_backup.policy import naming
from tests.faults.test_hostile_copies import Storage, bucket_storage, directory_storage, target_of
from tests.support.cli_runner import Result
from tests.support.faults import Clock, cli, ours, set_state
from tests.support.reads import bytes_read_from
from tests.support.service_host import service_host

BIG = 1_000_000  # incompressible bytes per value, under etcd's 1.5 MiB request limit


def _fill(lab: Lab) -> None:
    """Two values of random bytes: the snapshot is mostly them, far more than its first pages."""
    for name in ("one", "two"):
        lab.etcd.put(f"/registry/secrets/default/{name}", os.urandom(BIG))


@pytest.fixture
def place(
    request: pytest.FixtureRequest, lab: Lab, tmp_path: Path
) -> Iterator[tuple[dict[str, object], Storage]]:
    """A target of the kind the test is parametrized with, and what is stored there."""
    kind = request.param
    if kind == "service":
        with service_host(lab) as host:
            host.host_setup("append-only")
            yield host.target("append-only"), directory_storage(host.directory)
        return
    form: dict[str, object] = {}
    if kind == "s3":
        server = request.getfixturevalue("s3_server")
        bucket = f"once-{tmp_path.name.lower().replace('_', '-')}"[:60]
        storage = bucket_storage(server, bucket)
        form.update(server=server, bucket=bucket)
    else:
        storage = directory_storage(lab.remote_dir if kind == "ssh" else tmp_path / "usb")
    yield target_of(kind, lab, tmp_path, **form), storage


def _newest(lab: Lab) -> Path:
    return lab.snapshot_dir / ours(lab.snapshot_dir)[-1]


def _recorded(lab: Lab, snapshot: Path) -> dict[str, object] | None:
    path = lab.root / "state" / "manifests" / f"{snapshot.name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _bad_run_shipped_nothing(
    lab: Lab, result: Result, before: dict[str, bytes], now: dict[str, bytes]
) -> None:
    assert result.code == 1, result.stderr
    assert "snapshot failed, nothing shipped" in result.stderr and "trailer" in result.stderr
    assert "Traceback" not in result.stderr
    assert now == before  # no copy, manifest, bundle or temporary of it, nothing rotated
    bad = _newest(lab)
    assert _recorded(lab, bad) is None
    assert not (lab.root / "state" / "bundles" / naming.bundle_name(bad.name)).exists()
    assert f"Snapshot {bad.name} saved and checked" not in result.stdout
    last = json.loads((lab.root / "state" / "state.json").read_text())["last_run"]
    assert last["exit_code"] == 1 and last["snapshot"] is None


KINDS = ["ssh", "local", "s3", "service"]


@pytest.mark.parametrize("place", KINDS, indirect=True)
@pytest.mark.parametrize("form", [{}, {"compression": "none"}], ids=["zstd", "as-is"])
def test_a_bad_trailer_found_by_the_upload_publishes_nothing(
    lab: Lab,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    place: tuple[dict[str, object], Storage],
    form: dict[str, object],
) -> None:
    target, stored = place
    _fill(lab)
    config = lab.write_config(tmp_path / "c.toml", targets=[{**target, **form}])
    clock = Clock()
    assert cli(lab, config, clock, "run").code == 0
    before = stored.files()
    set_state(lab, failure="corrupt")  # a byte flipped mid-file: size and meta pages hold
    with bytes_read_from(monkeypatch, lab.snapshot_dir) as reads:
        result = cli(lab, config, clock, "run")
    _bad_run_shipped_nothing(lab, result, before, stored.files())
    bad = _newest(lab)
    assert reads[bad.name] < 1.5 * bad.stat().st_size  # the upload's read found it


@pytest.mark.parametrize(
    "form", [{}, {"compression": "none"}, {"compression": "zip"}], ids=["zstd", "as-is", "zip"]
)
def test_the_snapshot_is_read_once_and_its_copy_verifies(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: dict[str, object]
) -> None:
    _fill(lab)
    config = lab.write_config(tmp_path / "c.toml", targets=[lab.ssh_target(**form)])
    with bytes_read_from(monkeypatch, lab.snapshot_dir) as reads:
        result = cli(lab, config, Clock(), "run")
    assert result.code == 0, result.stderr
    snapshot = _newest(lab)
    size = snapshot.stat().st_size
    # one whole read (the upload's), the first pages checked as it was taken, the identity's
    # bbolt pages through mmap (not counted here): before, the check read it whole first
    assert size <= reads[snapshot.name] < 1.5 * size
    digest = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    recorded = _recorded(lab, snapshot)
    assert recorded is not None and (recorded["sha256"], recorded["size"]) == (digest, size)
    lines = result.lines
    checked = next(i for i, line in enumerate(lines) if "saved and checked" in line)
    copied = next(i for i, line in enumerate(lines) if line.startswith("Copied"))
    assert checked < copied  # said checked before the copy is said verified
    assert cli(lab, config, Clock(), "verify").code == 0


def test_with_no_target_reached_the_snapshot_is_checked_on_its_own(
    lab: Lab, tmp_path: Path
) -> None:
    config = lab.write_config(tmp_path / "c.toml")
    clock = Clock()
    lab.sshd.stop()
    result = cli(lab, config, clock, "run")
    assert result.code == 3, result.stderr
    good = _newest(lab)
    assert f"Snapshot {good.name} saved and checked" in result.stdout
    recorded = _recorded(lab, good)
    assert recorded is not None
    assert recorded["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()

    set_state(lab, failure="corrupt")
    result = cli(lab, config, clock, "run")
    assert result.code == 1, result.stderr
    assert "snapshot failed, nothing shipped" in result.stderr and "trailer" in result.stderr
    assert _recorded(lab, _newest(lab)) is None


def test_a_target_catching_up_gets_nothing_before_a_bad_snapshot_is_found(
    lab: Lab, tmp_path: Path
) -> None:
    config = lab.write_config(tmp_path / "c.toml")
    clock = Clock()
    assert cli(lab, config, clock, "run").code == 0
    lab.sshd.stop()
    assert cli(lab, config, clock, "run").code == 3  # its snapshot is left to catch up
    lab.sshd.start()
    remote = directory_storage(lab.remote_dir)
    before = remote.files()
    set_state(lab, failure="corrupt")
    result = cli(lab, config, clock, "run")
    _bad_run_shipped_nothing(lab, result, before, remote.files())
