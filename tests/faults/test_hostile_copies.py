"""Copies planted by an attacker with write access to the backup location (issue 14, finding 2):
a tiny zstd or zip bomb, a manifest of hundreds of MiB, a manifest announcing more than the disk
holds, a restore bundle symlinked to /dev/zero. Each goes through the real commands (`fetch`,
`inspect`, `verify`, `restore --dry-run`) against real targets (the loopback sshd, a local
directory, moto's S3): exit 1 with a message naming the copy and the limit, no traceback,
nothing written at --out or left in the work dirs, and every stored file byte-identical after.

The attacker writes the manifest too, so a planted copy always "matches" it: the caps, not the
checksums, are what stop it. Memory and disk stay bounded by design: the bombs expand to 64 MiB,
and the zstd one is fetched onto a 16 MiB disk, which an uncapped decoder fills (ENOSPC) before
any size check could run."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard

from k3s_backup.catalogue.manifest import MAX_MANIFEST
from k3s_backup.lab.lab import Lab
from k3s_backup.lab.s3 import ACCESS_KEY, SECRET_KEY, S3Server
from k3s_backup.policy import naming
from tests.support.cli_runner import Result
from tests.support.faults import Clock, cli, small_tmpfs

BOMB_SIZE = 64 << 20  # what the bombs expand to, four times the small disk below
STORED = {"ssh": "backup-host", "local": "usb", "s3": "objects"}


@dataclass
class Storage:
    """The backup location as the attacker sees it: names and bytes, no project code."""

    names: Callable[[], list[str]]
    read: Callable[[str], bytes]
    write: Callable[[str, bytes], None]

    def files(self) -> dict[str, bytes]:
        return {name: self.read(name) for name in self.names()}


def directory_storage(directory: Path) -> Storage:
    def read(name: str) -> bytes:
        path = directory / name
        if path.is_symlink():  # never read through it: it may lead to /dev/zero
            return f"symlink to {os.readlink(path)}".encode()
        return path.read_bytes()

    def write(name: str, data: bytes) -> None:
        (directory / name).write_bytes(data)

    return Storage(lambda: sorted(p.name for p in directory.iterdir()), read, write)


def bucket_storage(server: S3Server, bucket: str) -> Storage:
    client: Any = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    client.create_bucket(Bucket=bucket)

    def names() -> list[str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix="lab/")
        return sorted(o["Key"].removeprefix("lab/") for o in listed.get("Contents", []))

    def read(name: str) -> bytes:
        body: bytes = client.get_object(Bucket=bucket, Key=f"lab/{name}")["Body"].read()
        return body

    def write(name: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"lab/{name}", Body=data)

    return Storage(names, read, write)


def target_of(kind: str, lab: Lab, tmp_path: Path, **form: object) -> dict[str, object]:
    if kind == "ssh":
        return lab.ssh_target(**form)
    if kind == "local":
        (tmp_path / "usb").mkdir(mode=0o700, exist_ok=True)  # a mounted disk's directory
        return {"name": "usb", "type": "local", "path": tmp_path / "usb", "keep": 7, **form}
    server: S3Server = form.pop("server")  # type: ignore[assignment]
    return {
        "name": "objects",
        "type": "s3",
        "bucket": form.pop("bucket"),
        "prefix": "lab",
        "endpoint_url": server.endpoint_url,
        "credentials_file": str(server.write_credentials(tmp_path / "s3-credentials")),
        "retries": 0,
        **form,
    }


@dataclass
class Setup:
    config: Path
    storage: Storage
    clock: Clock

    def __call__(self, lab: Lab, *args: str) -> Result:
        """A command as an operator who lets unauthenticated copies through would run it: a
        planted copy is then stopped by the caps alone (without the option, it is refused
        before any byte of it is read: tests/faults/test_hostile_host.py)."""
        if args[0] in READERS:
            args = (*args, "--allow-unauthenticated")
        return cli(lab, self.config, self.clock, *args)


READERS = ("fetch", "inspect", "diff", "drill", "restore")


def backed_up(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest, kind: str, **form: object
) -> Setup:
    """One run to the target of `kind`; the local snapshot then removed, so every command
    must read the planted copy from the target."""
    if kind == "s3":
        server = request.getfixturevalue("s3_server")
        bucket = f"hostile-{tmp_path.name.lower().replace('_', '-')}"[:60]
        storage = bucket_storage(server, bucket)
        form.update(server=server, bucket=bucket)
    elif kind == "local":
        storage = directory_storage(tmp_path / "usb")
    else:
        storage = directory_storage(lab.remote_dir)
    target = target_of(kind, lab, tmp_path, **form)
    k3s = {"bin": lab.bin_dir / "k3s", "data_dir": lab.data_dir, "config_dir": lab.root / "etc"}
    config = lab.write_config(tmp_path / "c.toml", targets=[target], k3s=k3s)
    setup = Setup(config, storage, Clock())
    lab.etcd.put("/registry/configmaps/default/app", "v1")
    ran = setup(lab, "run")
    assert ran.code == 0, ran.stderr
    for local in lab.snapshot_dir.iterdir():
        local.unlink()
    return setup


def stored_copy(storage: Storage) -> str:
    """The one copy stored there (the name its manifest is named after)."""
    names = storage.names()
    [copy] = [name for name in names if name + ".json" in names]
    return copy


def plant(storage: Storage, name: str, body: bytes, **manifest: object) -> None:
    """Replace a copy with `body` and its manifest with one that matches it, as an attacker who
    can write there would; `manifest` overrides more of its fields."""
    recorded = json.loads(storage.read(name + ".json"))
    recorded.update(size=len(body), sha256=hashlib.sha256(body).hexdigest(), **manifest)
    recorded["mac"] = ""  # the attacker cannot make one
    storage.write(name, body)
    storage.write(name + ".json", json.dumps(recorded).encode())


def zstd_bomb() -> bytes:
    compressor = zstandard.ZstdCompressor().compressobj()
    chunk = bytes(1 << 20)
    body = b"".join(compressor.compress(chunk) for _ in range(BOMB_SIZE >> 20))
    return body + compressor.flush()


def zip_bomb(inner: str) -> bytes:
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open(inner, "w", force_zip64=True) as entry,
    ):
        for _ in range(BOMB_SIZE >> 20):
            entry.write(bytes(1 << 20))
    return buffer.getvalue()


def assert_refused_cleanly(result: Result, *phrases: str) -> None:
    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def leftovers(state_dir: Path) -> list[str]:
    """Work dirs left under the state dir (fetches for restore, inspect and drill go there)."""
    if not state_dir.exists():
        return []
    return sorted(p.name for p in state_dir.iterdir() if p.is_dir() and "-" in p.name)


@pytest.mark.parametrize("kind", ["ssh", "local", "s3"])
def test_a_zstd_bomb_is_refused_at_the_plain_size_its_manifest_gives(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    setup = backed_up(lab, tmp_path, request, kind)
    name = stored_copy(setup.storage)
    assert name.endswith(".zst")
    plain_size = json.loads(setup.storage.read(name + ".json"))["plain_size"]
    bomb = zstd_bomb()
    assert len(bomb) < 16 << 10  # a few KiB that expand to 64 MiB
    plant(setup.storage, name, bomb)
    planted = setup.storage.files()
    out_dir = tmp_path / "small-disk"
    with small_tmpfs(out_dir, "16m"):
        fetched = setup(lab, "fetch", "latest", "--out", str(out_dir / "snap.db"))
        written = sorted(p.name for p in out_dir.iterdir())
    assert_refused_cleanly(
        fetched, f"{name}, decoded, holds more than {plain_size} bytes", "refusing it"
    )
    assert written == []  # no snapshot, no partial file, no work dir
    assert setup.storage.files() == planted


def test_a_zip_bomb_is_refused_by_inspect_and_leaves_no_work_file(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    setup = backed_up(lab, tmp_path, request, "ssh", compression="zip")
    name = stored_copy(setup.storage)
    assert name.endswith(".zip")
    recorded = json.loads(setup.storage.read(name + ".json"))
    plant(setup.storage, name, zip_bomb(recorded["snapshot"]))
    planted = setup.storage.files()
    inspected = setup(lab, "inspect", "latest")
    assert_refused_cleanly(
        inspected, f"{name}, decoded, holds more than {recorded['plain_size']} bytes"
    )
    assert leftovers(lab.root / "state") == []
    assert setup.storage.files() == planted


def test_a_manifest_announcing_more_than_the_disk_holds_is_refused_before_any_download(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`inspect` fetches under the state dir (on disk), not into /tmp (often a tmpfs): the
    free-space check names where it would have written."""
    setup = backed_up(lab, tmp_path, request, "ssh")
    name = stored_copy(setup.storage)
    plant(setup.storage, name, setup.storage.read(name), plain_size=1 << 50)
    planted = setup.storage.files()
    out = tmp_path / "out" / "snap.db"
    out.parent.mkdir()
    fetched = setup(lab, "fetch", "latest", "--out", str(out))
    assert_refused_cleanly(fetched, f"fetching backup-host: {name} needs", "GiB free")
    assert list(out.parent.iterdir()) == []
    inspected = setup(lab, "inspect", "latest")
    assert_refused_cleanly(inspected, f"in {lab.root / 'state'}/", "fetch to another disk")
    assert leftovers(lab.root / "state") == []
    assert setup.storage.files() == planted


def test_a_huge_manifest_is_refused_at_its_cap_by_verify_and_fetch(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A manifest padded to 1 MiB (valid JSON, so an uncapped reader takes it) and one of
    256 MiB (sparse: no disk used) both stop at MAX_MANIFEST + 1 bytes."""
    setup = backed_up(lab, tmp_path, request, "ssh")
    name = stored_copy(setup.storage)
    manifest = lab.remote_dir / f"{name}.json"
    manifest.write_bytes(manifest.read_bytes() + b" " * (1 << 20))
    planted = setup.storage.files()
    verified = setup(lab, "verify")
    assert_refused_cleanly(verified, f"manifest of {name} refused", f"more than {MAX_MANIFEST}")
    assert setup.storage.files() == planted

    with manifest.open("r+b") as sparse:
        sparse.truncate(256 << 20)
    out = tmp_path / "snap.db"
    fetched = setup(lab, "fetch", "latest", "--out", str(out))
    assert_refused_cleanly(fetched, f"manifest of {name} refused", f"more than {MAX_MANIFEST}")
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    assert manifest.stat().st_size == 256 << 20


def test_a_bundle_symlinked_to_dev_zero_is_refused_by_restore_dry_run(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    setup = backed_up(lab, tmp_path, request, "local")
    name = stored_copy(setup.storage)
    bundle = tmp_path / "usb" / naming.bundle_name(name)
    assert bundle.is_file()
    bundle.unlink()
    bundle.symlink_to("/dev/zero")
    planted = setup.storage.files()
    (lab.root / "state" / "bundles").rename(lab.root / "no-local-bundles")
    restored = setup(lab, "restore", "latest", "--dry-run")
    assert_refused_cleanly(restored, f"{bundle} is a symbolic link: refusing to follow it")
    assert "nothing was stopped or changed" in restored.stderr
    assert os.readlink(bundle) == "/dev/zero"
    assert setup.storage.files() == planted
    assert leftovers(lab.root / "state") == []
