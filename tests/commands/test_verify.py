"""`k3s-backup verify` on this node's own snapshots: each is checked against the manifest
recorded when it was made (state_dir/manifests), not only against its own trailer."""

from __future__ import annotations

import json
from pathlib import Path

from k3s_backup.lab.lab import Lab
from tests.support.faults import Clock, cli


def test_a_local_snapshot_replaced_by_another_valid_one_fails_against_its_manifest(
    lab: Lab, tmp_path: Path
) -> None:
    """A whole, valid snapshot of another moment under this name passes the trailer check;
    only the recorded manifest tells it is not the snapshot that was taken."""
    config = lab.write_config(tmp_path / "c.toml")
    clock = Clock()
    for value in ("v1", "v2"):
        lab.etcd.put("/registry/configmaps/default/app", value)
        assert cli(lab, config, clock, "run").code == 0
    older, newer = sorted(p for p in lab.snapshot_dir.iterdir() if p.name.startswith("k3s-lab"))
    assert cli(lab, config, clock, "verify").code == 0
    older.write_bytes(newer.read_bytes())
    before = {p.name: p.read_bytes() for p in (lab.root / "state" / "manifests").iterdir()}

    verified = cli(lab, config, clock, "verify", "--json")
    assert verified.code == 1, verified.stderr
    findings = {f["name"]: f for f in json.loads(verified.stdout)}
    assert findings[newer.name]["ok"]
    assert not findings[older.name]["ok"]
    assert "differs from its recorded manifest's" in findings[older.name]["problem"]
    after = {p.name: p.read_bytes() for p in (lab.root / "state" / "manifests").iterdir()}
    assert after == before  # the recorded manifest is evidence: never rewritten by verify


def test_a_refused_manifest_fails_its_own_copy_and_the_others_are_still_verified(
    lab: Lab, tmp_path: Path
) -> None:
    config = lab.write_config(tmp_path / "c.toml")
    clock = Clock()
    for value in ("v1", "v2"):
        lab.etcd.put("/registry/configmaps/default/app", value)
        assert cli(lab, config, clock, "run").code == 0
    older, newer = sorted(p.name for p in lab.remote_dir.iterdir() if p.name.endswith(".zst"))
    manifest = lab.remote_dir / f"{older}.json"
    manifest.write_bytes(manifest.read_bytes() + b" " * (1 << 20))  # valid JSON, 1 MiB

    verified = cli(lab, config, clock, "verify", "--json")
    assert verified.code == 1, verified.stderr
    remote = {f["name"]: f for f in json.loads(verified.stdout) if f["location"] == "backup-host"}
    assert remote[newer]["ok"]
    assert not remote[older]["ok"]
    assert "manifest of" in remote[older]["problem"] and "65536" in remote[older]["problem"]
