"""Crafted and damaged snapshot files given to `inspect` and `diff`: each ends quickly with
exit 1 and a message naming the file and what is wrong, never a traceback or a hang. The
command runs as a real process, so a hang fails the test at its timeout instead of hanging it."""

from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import bolt_files

WAIT = 60.0  # far more than any of these needs; a hang fails here instead of blocking
DEEP_JSON = b'{"a":' * 2000 + b"1" + b"}" * 2000


def k3s_backup(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("k3s-backup")
    return subprocess.run(
        [str(script), *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


PLANTED = {
    "self-branch.db": (bolt_files.self_referencing_branch(), "its own descendant"),
    "cycle.db": (bolt_files.cyclic_branches(), "its own descendant"),
    "bad-kv.db": (
        bolt_files.etcd_snapshot([(bolt_files.revision_key(2), b"\x0a\xff\xff")]),
        "damaged KeyValue at revision",
    ),
    "endless-varint.db": (
        bolt_files.etcd_snapshot([(bolt_files.revision_key(2), b"\x10" + b"\x80" * 3000)]),
        "varint too long",
    ),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
@pytest.mark.parametrize("extra", [(), ("--json",), ("--keys", "/"), ("--get", "/registry/x")])
def test_inspect_of_a_crafted_snapshot_exits_1_naming_it(tmp_path, name, extra):
    data, problem = PLANTED[name]
    path = tmp_path / name
    path.write_bytes(data)
    done = k3s_backup("inspect", str(path), *extra)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and str(path) in done.stderr
    assert problem in done.stderr
    assert path.read_bytes() == data


def test_diff_with_a_crafted_snapshot_exits_1_naming_it(tmp_path):
    good = tmp_path / "good.db"
    good.write_bytes(bolt_files.etcd_snapshot([(bolt_files.revision_key(2), _kv(b"/k", b"v"))]))
    hostile = tmp_path / "self-branch.db"
    hostile.write_bytes(bolt_files.self_referencing_branch())
    for old, new in ((good, hostile), (hostile, good)):
        done = k3s_backup("diff", str(old), str(new))
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert f"{hostile}" in done.stderr and "its own descendant" in done.stderr


def _kv(key: bytes, value: bytes) -> bytes:
    return bolt_files.key_value(key, value)


def test_a_value_nested_too_deeply_is_shown_raw(tmp_path):
    path = tmp_path / "deep.db"
    key = b"/registry/example.com/gadgets/deep"
    path.write_bytes(bolt_files.etcd_snapshot([(bolt_files.revision_key(2), _kv(key, DEEP_JSON))]))
    done = k3s_backup("inspect", str(path), "--get", key.decode(), "--json")
    assert done.returncode == 0, done.stderr
    assert '"problem": "not valid JSON: nested too deeply"' in done.stdout
    assert '"value_base64"' in done.stdout


def _zip_with_method(path: Path, method: int, flags: int = 0) -> None:
    """A one-entry zip whose entry claims compression `method` and general-purpose `flags`
    (bit 0: encrypted), in both its local and its central header."""
    inner = path.name.removesuffix(".zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(inner, bolt_files.self_referencing_branch())
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<HH", data, local + 6, flags, method)
    struct.pack_into("<HH", data, central + 8, flags, method)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("method", "flags", "problem"),
    [(99, 0, "compression method"), (0, 1, "encrypted"), (8, 0, "zip snapshot is damaged")],
)
def test_a_zip_snapshot_zipfile_cannot_open_exits_1(tmp_path, method, flags, problem):
    path = tmp_path / "k3s-lab-20261123-020000-k3s-05-1795399200.zip"
    _zip_with_method(path, method, flags)
    done = k3s_backup("inspect", str(path))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert str(path) in done.stderr and problem in done.stderr


def test_a_file_that_cannot_be_read_exits_1_naming_it(tmp_path):
    path = tmp_path / "snapshot.db"
    path.symlink_to("/proc/self/mem")  # a regular file to stat, EIO to read
    done = k3s_backup("inspect", str(path))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{path}: cannot read it: Input/output error" in done.stderr
