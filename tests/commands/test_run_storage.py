"""Storage that scales and protects: S3 + SSH in one run, compression, age, GFS (issue 6)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pyrage
import pytest
import zstandard

from k3s_backup.lab.etcd import snapshot_status
from k3s_backup.lab.s3 import ACCESS_KEY, SECRET_KEY
from tests.support.cli_runner import clock_at, invoke


class Clock:
    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(minutes=1)):
        self.current = start or datetime(2026, 11, 23, 2, 0, 0).astimezone()
        self.step = step

    def __call__(self) -> datetime:
        self.current += self.step
        return self.current


@pytest.fixture
def bucket(s3_server, tmp_path):
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    name = f"bk-{tmp_path.name.lower().replace('_', '-')}"[:60]
    client.create_bucket(Bucket=name)
    return client, name


def s3_target(s3_server, bucket, tmp_path: Path, **extra: object) -> dict[str, object]:
    return {
        "name": "objects",
        "type": "s3",
        "bucket": bucket[1],
        "prefix": "homelab",
        "endpoint_url": s3_server.endpoint_url,
        "credentials_file": str(s3_server.write_credentials(tmp_path / "s3-credentials")),
        **extra,
    }


def keys(client, bucket_name: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket_name, Prefix="homelab/")
    return sorted(o["Key"].removeprefix("homelab/") for o in listed.get("Contents", []))


def test_ssh_and_s3_in_one_run_and_s3_copy_decodes_with_boto3_alone(
    lab, s3_server, bucket, tmp_path
):
    client, name = bucket
    lab.etcd.put("/registry/secrets/default/db", "s3cr3t")
    config = lab.write_config(
        tmp_path / "c.toml", targets=[lab.ssh_target(), s3_target(s3_server, bucket, tmp_path)]
    )
    result = invoke(["--config", str(config), "run"], environ=lab.env(), now=Clock())
    assert result.code == 0, result.stderr
    [local] = [p for p in lab.snapshot_dir.iterdir()]
    assert keys(client, name) == [
        f"{local.name}.zst",
        f"{local.name}.zst.bundle.tar",
        f"{local.name}.zst.json",
    ]
    stored = client.get_object(Bucket=name, Key=f"homelab/{local.name}.zst")["Body"].read()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored) == local.read_bytes()
    manifest = json.loads(
        client.get_object(Bucket=name, Key=f"homelab/{local.name}.zst.json")["Body"].read()
    )
    assert manifest["compression"] == "zstd" and manifest["snapshot"] == local.name


@pytest.mark.parametrize("down", ["ssh", "s3"])
def test_one_target_down_the_other_still_gets_its_copy(lab, s3_server, bucket, tmp_path, down):
    client, name = bucket
    s3 = s3_target(s3_server, bucket, tmp_path)
    if down == "s3":
        s3["bucket"] = "no-such-bucket"
    else:
        lab.sshd.stop()
    config = lab.write_config(tmp_path / "c.toml", targets=[lab.ssh_target(), s3])
    result = invoke(["--config", str(config), "run"], environ=lab.env(), now=Clock())
    assert result.code == 3
    failed = "objects" if down == "s3" else "backup-host"
    assert f"{failed} failed" in result.stderr
    if down == "s3":
        assert len(list(lab.remote_dir.glob("*.zst"))) == 1
    else:
        assert len([k for k in keys(client, name) if k.endswith(".zst")]) == 1


def test_age_encrypted_copy_needs_the_private_key(lab, tmp_path):
    identity = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"{identity}\n")
    target = lab.ssh_target(age_recipients=[str(identity.to_public())])
    config = lab.write_config(tmp_path / "c.toml", targets=[target])
    result = invoke(["--config", str(config), "run"], environ=lab.env(), now=Clock())
    assert result.code == 0, result.stderr
    [sealed] = lab.remote_dir.glob("*.zst.age")
    [local] = [p for p in lab.snapshot_dir.iterdir()]
    assert b"/registry" not in sealed.read_bytes()
    decrypted = subprocess.run(
        ["age", "-d", "-i", str(key_file), str(sealed)], capture_output=True, check=True
    ).stdout
    assert zstandard.ZstdDecompressor().decompressobj().decompress(decrypted) == local.read_bytes()
    bundle = (lab.remote_dir / f"{sealed.name}.bundle.tar").read_bytes()
    assert bundle.startswith(b"age-encryption.org/v1")  # the token is encrypted too
    assert invoke(["--config", str(config), "verify"], environ=lab.env()).code == 0


@pytest.mark.parametrize("compression", ["none", "zip"])
def test_other_compressions_round_trip(lab, tmp_path, compression):
    lab.etcd.put("/registry/configmaps/default/a", "b")
    target = lab.ssh_target(compression=compression)
    config = lab.write_config(tmp_path / "c.toml", targets=[target])
    assert invoke(["--config", str(config), "run"], environ=lab.env(), now=Clock()).code == 0
    [local] = [p for p in lab.snapshot_dir.iterdir()]
    suffix = {"none": "", "zip": ".zip"}[compression]
    stored = lab.remote_dir / f"{local.name}{suffix}"
    if compression == "zip":
        plain = subprocess.run(
            ["unzip", "-p", str(stored), local.name], capture_output=True, check=True
        ).stdout
    else:
        plain = stored.read_bytes()
    assert plain == local.read_bytes()
    plain_file = tmp_path / "plain.db"
    plain_file.write_bytes(plain)
    assert snapshot_status(plain_file)["revision"] > 0


def test_gfs_keeps_by_rule_and_prune_dry_run_says_which(lab, tmp_path):
    target = lab.ssh_target(keep=2, keep_daily=4)
    config = lab.write_config(tmp_path / "c.toml", keep_local=10, targets=[target])
    start = datetime(2026, 11, 1, 2, 0, 0).astimezone()
    for run in range(12):  # two runs a day for six days
        when = start + timedelta(hours=12 * run)
        result = invoke(["--config", str(config), "run"], environ=lab.env(), now=clock_at(when))
        assert result.code == 0, result.stderr
    stored = sorted(p.name for p in lab.remote_dir.glob("*.zst"))
    days = sorted({name.split("-")[2] for name in stored})
    assert len(days) == 4  # one per day for the last 4 days, the newest 2 among them
    assert len(stored) == 5  # newest 2 share the last day; 3 earlier days
    dry = invoke(["--config", str(config), "prune", "--dry-run"], environ=lab.env())
    assert dry.code == 0
    assert "(the newest copy; daily of 2026-11-06)" in dry.stdout  # reasons in words
    assert "(daily of 2026-11-03)" in dry.stdout
    assert sorted(p.name for p in lab.remote_dir.glob("*.zst")) == stored


def test_bad_storage_config_is_refused(lab, tmp_path):
    config = lab.write_config(
        tmp_path / "c.toml", targets=[lab.ssh_target(compression="lz4", keep_weekly=-1)]
    )
    result = invoke(["--config", str(config), "run"], environ=lab.env())
    assert result.code == 2
    assert "target 'backup-host': keep_weekly: must be at least 0" in result.stderr
    assert "target 'backup-host': compression" in result.stderr


def test_bad_age_recipient_is_a_clear_error(lab, tmp_path):
    config = lab.write_config(
        tmp_path / "c.toml", targets=[lab.ssh_target(age_recipients=["age1notakey"])]
    )
    result = invoke(["--config", str(config), "run"], environ=lab.env())
    assert result.code == 3
    assert "not an age or SSH public key" in result.stderr
    assert not list(lab.remote_dir.glob("*")) if lab.remote_dir.exists() else True


def test_a_snapshot_changed_after_its_check_is_not_shipped_with_the_old_sha256(lab, tmp_path):
    """The plain bytes are hashed as they are encoded: a local snapshot whose bytes are not the
    ones checked and recorded (here swapped for another valid snapshot of the same size, which
    passes its trailer check) fails its copy; no copy or manifest of it is published."""
    config = lab.write_config(tmp_path / "c.toml")
    clock = Clock()
    for value in ("v1", "v2"):
        lab.etcd.put("/registry/configmaps/default/app", value)
        assert invoke(["--config", str(config), "run"], environ=lab.env(), now=clock).code == 0
    older, newer = sorted(p for p in lab.snapshot_dir.iterdir() if p.name.startswith("k3s-lab"))
    assert older.stat().st_size == newer.stat().st_size
    stored = older.name + ".zst"
    for lost in (stored, f"{stored}.json", f"{stored}.bundle.tar"):  # the target lost it
        (lab.remote_dir / lost).unlink()
    older.write_bytes(newer.read_bytes())
    result = invoke(["--config", str(config), "run"], environ=lab.env(), now=clock)
    assert result.code == 3, result.stderr
    assert f"{older.name} changed since it was checked" in result.stderr
    assert "Traceback" not in result.stderr
    left = sorted(p.name for p in lab.remote_dir.iterdir())
    assert not [name for name in left if name.startswith(stored) or ".partial-" in name]
