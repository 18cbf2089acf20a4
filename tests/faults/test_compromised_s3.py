"""A compromised node against an S3 target with Object Lock (issue 17, S3): with the node's own
credentials the intruder deletes (with and without a version), overwrites copies and manifests
and batch-deletes; every stored version stays byte-identical, and `run`, `verify`, `fetch`,
`restore` and `prune` still work, rotation reporting the copies still locked.

The S3 server is moto's: it enforces a lock against deletes but models no IAM and does not
enforce it against PutObjectRetention (tests/targets/test_s3_object_lock.py says which)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard
from botocore.exceptions import ClientError

from k3s_backup.lab.lab import Lab
from k3s_backup.lab.s3 import ACCESS_KEY, SECRET_KEY
from k3s_backup.state import read_state
from tests.support.cli_runner import Result, invoke
from tests.support.json_schema import validate

PREFIX = "homelab/"


class Clock:
    """Real time (moto judges locks by it), a minute further at each call."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        self.current += timedelta(minutes=1)
        return self.current


class Node:
    def __init__(self, lab: Lab, tmp_path: Path, s3_server: Any, mode: str) -> None:
        self.lab, self.mode = lab, mode
        self.client = boto3.client(  # the node's own credentials: the intruder's
            "s3",
            endpoint_url=s3_server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        self.bucket = f"cmp-{tmp_path.name.lower().replace('_', '-')}"[:60].rstrip("-")
        self.client.create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=True)
        target = {
            "name": "objects",
            "type": "s3",
            "bucket": self.bucket,
            "prefix": PREFIX,
            "endpoint_url": s3_server.endpoint_url,
            "credentials_file": str(s3_server.write_credentials(tmp_path / "s3-credentials")),
            "keep": 2,
            "retries": 0,
            "object_lock": mode,
        }
        k3s = {"bin": lab.bin_dir / "k3s", "data_dir": lab.data_dir, "config_dir": lab.root / "etc"}
        self.config = lab.write_config(
            tmp_path / "config.toml", k3s=k3s, restore={"ready_timeout": 60}, targets=[target]
        )
        self.clock = Clock(datetime.now().astimezone())

    def cli(self, *args: str, clock: Callable[[], datetime] | None = None) -> Result:
        return invoke(
            ["--config", str(self.config), *args], environ=self.lab.env(), now=clock or self.clock
        )

    def versions(self) -> dict[tuple[str, str], bytes]:
        """Every stored version's bytes, by key and version, read with boto3 alone."""
        listed = self.client.list_object_versions(Bucket=self.bucket, Prefix=PREFIX)
        return {
            (v["Key"], v["VersionId"]): self.client.get_object(
                Bucket=self.bucket, Key=v["Key"], VersionId=v["VersionId"]
            )["Body"].read()
            for v in listed.get("Versions", [])
        }

    def copies(self) -> list[str]:
        listed = self.client.list_object_versions(Bucket=self.bucket, Prefix=PREFIX)
        keys = {v["Key"][len(PREFIX) :] for v in listed.get("Versions", [])}
        return sorted(k for k in keys if k.endswith(".zst"))


@pytest.fixture(params=["governance", "compliance"])
def node(request, lab, tmp_path, s3_server) -> Node:
    return Node(lab, tmp_path, s3_server, request.param)


def attack(node: Node, name: str) -> None:
    """What an intruder with the node's credentials tries on one stored copy."""
    key, manifest = PREFIX + name, PREFIX + name + ".json"
    ours = node.client.list_object_versions(Bucket=node.bucket, Prefix=key)["Versions"]
    for version in [v for v in ours if v["Key"] in (key, manifest)]:
        with pytest.raises(ClientError, match="AccessDenied"):
            node.client.delete_object(
                Bucket=node.bucket, Key=version["Key"], VersionId=version["VersionId"]
            )
        batch = node.client.delete_objects(
            Bucket=node.bucket,
            Delete={"Objects": [{"Key": version["Key"], "VersionId": version["VersionId"]}]},
        )
        assert batch.get("Errors") and not batch.get("Deleted")
    node.client.put_object(Bucket=node.bucket, Key=key, Body=b"encrypted by ransomware")
    node.client.put_object(Bucket=node.bucket, Key=manifest, Body=b'{"name": "forged"}')
    node.client.delete_object(Bucket=node.bucket, Key=key)  # a delete marker on top


def test_the_intruder_destroys_nothing_and_everything_still_works(node: Node, lab: Lab, tmp_path):
    lab.etcd.put("/registry/configmaps/default/app", "v1")
    # a copy made ten days ago: past its retention, so never locked (and rotated first)
    old = node.cli("run", clock=Clock(datetime.now().astimezone() - timedelta(days=10)))
    assert old.code == 0, old.stderr
    [unlocked] = node.copies()
    for _ in range(2):
        made = node.cli("run")
        assert made.code == 0, made.stderr
    assert f"Rotated {unlocked} off objects" in made.stdout, made.stdout  # keep = 2; no lock
    assert len(node.copies()) == 2 and unlocked not in node.copies()
    kept = node.versions()
    plain = {p.name: p.read_bytes() for p in lab.snapshot_dir.iterdir()}

    for name in node.copies():
        attack(node, name)

    after = node.versions()
    assert {k: after[k] for k in kept} == kept  # every version ours is there, byte-identical
    verified = node.cli("verify")
    assert verified.code == 0, verified.stdout + verified.stderr

    for name in node.copies():
        out = tmp_path / f"{name}.fetched"
        fetched = node.cli("fetch", name.removesuffix(".zst"), "--from", "objects", "-o", str(out))
        assert fetched.code == 0, fetched.stderr
        assert out.read_bytes() == plain[name.removesuffix(".zst")]

    # the next run rotates the oldest copy, still locked: reported, not a failure
    lab.etcd.put("/registry/configmaps/default/app", "v2")
    rotating = node.cli("run")
    assert rotating.code == 0, rotating.stderr
    locked = re.findall(r"(\S+) on objects: locked until (\S+ \S+[+-]\d\d:\d\d);", rotating.stdout)
    assert [name for name, _ in locked] == node.copies()[:1]
    report = validate(json.dumps(read_state(lab.root / "state")["last_run"]), "run")
    assert list(report["targets"]["objects"]["locked"]) == node.copies()[:1]
    assert node.copies()[0] not in report["targets"]["objects"]["removed"]
    assert node.versions().items() >= kept.items()
    dry = node.cli("prune", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert f"objects: keep   {node.copies()[0]}  (locked until" in dry.stdout
    assert f"would remove {node.copies()[0]}" not in dry.stdout
    pruned = node.cli("prune")
    assert pruned.code == 0, pruned.stderr
    assert f"objects: {node.copies()[0]}: locked until" in pruned.stdout  # named once

    # restore from the bucket: the newest copy, with what etcd held then
    lab.etcd.put("/registry/configmaps/default/app", "v3")
    restored = node.cli("restore", "latest", "--from", "objects", "--yes")
    assert restored.code == 0, restored.stdout + restored.stderr
    assert lab.etcd.get_all()["/registry/configmaps/default/app"] == b"v2"


def test_the_stored_copy_is_the_snapshot_compressed(node: Node, lab: Lab):
    assert node.cli("run").code == 0
    [name] = node.copies()
    listed = node.client.list_object_versions(Bucket=node.bucket, Prefix=PREFIX + name)
    [version] = [v for v in listed["Versions"] if v["Key"] == PREFIX + name]
    head = node.client.head_object(
        Bucket=node.bucket, Key=PREFIX + name, VersionId=version["VersionId"]
    )
    assert head["ObjectLockMode"] == node.mode.upper()
    stored = node.versions()[(PREFIX + name, version["VersionId"])]
    local = (lab.snapshot_dir / name.removesuffix(".zst")).read_bytes()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored) == local
