"""A hostile backup host: files planted there with the test's own hands, never through the
product. Each plant is refused by `fetch` and `restore` before anything is stopped, named by
`verify`, marked by `list`; every copy stays byte-identical and etcd keeps running its data."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pyrage
import pytest

from k3s_backup.lab.fake_k3s import FakeK3sState, new_token
from k3s_backup.lab.lab import Lab
from tests.faults.test_hostile_copies import backed_up, plant, stored_copy
from tests.support.faults import Clock, cli, ours

EVIL = "k3s-lab-20991231-235959-evil-4102444799"


@pytest.fixture
def config(lab: Lab, tmp_path: Path) -> Path:
    k3s = {"bin": lab.bin_dir / "k3s", "data_dir": lab.data_dir, "config_dir": lab.root / "etc"}
    return lab.write_config(tmp_path / "c.toml", k3s=k3s, restore={"ready_timeout": 60})


def two_runs(lab: Lab, config: Path, clock: Clock) -> None:
    for value in ("v1", "v2"):
        lab.etcd.put("/registry/configmaps/default/app", value)
        assert cli(lab, config, clock, "run").code == 0


def manifest_of(lab: Lab, name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((lab.remote_dir / f"{name}.json").read_text())
    return loaded


def plant_forged(lab: Lab, mac: str) -> str:
    """A whole, valid etcd snapshot of the attacker's choosing, named newer than anything, with
    a manifest whose SHA-256s are right (and a MAC of its own making, or none)."""
    forged = lab.etcd.snapshot_save(lab.root / "attacker.db").read_bytes()
    digest = hashlib.sha256(forged).hexdigest()
    (lab.remote_dir / EVIL).write_bytes(forged)
    manifest = {
        "name": EVIL, "cluster": "k3s-lab", "node": "evil", "source": "k3s",
        "created": "2099-12-31T23:59:59Z", "size": len(forged), "sha256": digest,
        "compression": "none", "encryption": "none", "snapshot": EVIL,
        "plain_size": len(forged), "plain_sha256": digest, "mac": mac,
    }  # fmt: skip
    (lab.remote_dir / f"{EVIL}.json").write_text(json.dumps(manifest))
    return EVIL


def plant_renamed(lab: Lab) -> str:
    """A valid copy and its manifest, copied to a name with a newer time."""
    _older, newest = ours(lab.remote_dir)
    renamed = newest.replace("-k3s-05-", "-k3s-05-9").replace("k3s-lab-2026", "k3s-lab-2098")
    (lab.remote_dir / renamed).write_bytes((lab.remote_dir / newest).read_bytes())
    (lab.remote_dir / f"{renamed}.json").write_text(json.dumps(manifest_of(lab, newest)))
    return renamed


def plant_swapped_manifest(lab: Lab) -> str:
    """The older copy and manifest put in place of the newest's (its bytes verify alone)."""
    older, newest = ours(lab.remote_dir)
    (lab.remote_dir / newest).write_bytes((lab.remote_dir / older).read_bytes())
    (lab.remote_dir / f"{newest}.json").write_text(json.dumps(manifest_of(lab, older)))
    return newest


PLANTS = {
    "forged-no-mac": lambda lab: plant_forged(lab, ""),
    "forged-own-mac": lambda lab: plant_forged(lab, "0" * 64),
    "renamed-newer": plant_renamed,
    "older-manifest-swapped-in": plant_swapped_manifest,
}
WHY = {
    "forged-no-mac": "is not authenticated (its manifest has no MAC",
    "forged-own-mac": "does not authenticate with this cluster's recovery key",
    "renamed-newer": "describes k3s-lab-2026",
    "older-manifest-swapped-in": "describes k3s-lab-",
}


def tree(lab: Lab) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(lab.remote_dir.iterdir())}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_a_planted_copy_is_refused_named_and_marked(
    lab: Lab, config: Path, tmp_path: Path, plant: str
) -> None:
    clock = Clock()
    two_runs(lab, config, clock)
    name = PLANTS[plant](lab)
    snapshot = name.removesuffix(".zst")
    for local in lab.snapshot_dir.iterdir():  # only the backup host's copies are left
        local.unlink()
    before = tree(lab)
    keys, pid = lab.etcd.get_all(), FakeK3sState.load(lab.state_file).etcd_pid

    fetched = cli(lab, config, clock, "fetch", snapshot, "--out", str(tmp_path / "out.db"))
    assert fetched.code == 1
    assert WHY[plant] in fetched.stderr, fetched.stderr
    assert not (tmp_path / "out.db").exists()

    restored = cli(lab, config, clock, "restore", snapshot, "--yes")
    assert restored.code == 1
    assert WHY[plant] in restored.stderr
    assert "nothing was changed" in restored.stderr
    assert lab.etcd.get_all() == keys
    assert FakeK3sState.load(lab.state_file).etcd_pid == pid  # never stopped

    verified = cli(lab, config, clock, "verify", "--json")
    assert verified.code == 1
    bad = {f["name"]: f["problem"] for f in json.loads(verified.stdout) if not f["ok"]}
    assert list(bad) == [name] and WHY[plant] in bad[name]

    listed = json.loads(cli(lab, config, clock, "list", "--json").stdout)
    marks = {e["name"]: e["authentic"] for e in listed if e["location"] == "backup-host"}
    assert marks[name] == ("no" if plant == "forged-no-mac" else "FORGED")
    assert [m for n, m in marks.items() if n != name] == ["yes"] * (len(marks) - 1)
    assert tree(lab) == before  # nothing on the host was touched


def test_an_unauthenticated_copy_is_used_only_when_allowed(
    lab: Lab, config: Path, tmp_path: Path
) -> None:
    """What a copy made before copies were authenticated looks like: no MAC."""
    clock = Clock()
    two_runs(lab, config, clock)
    _older, newest = ours(lab.remote_dir)
    manifest = manifest_of(lab, newest)
    manifest["mac"] = ""
    (lab.remote_dir / f"{newest}.json").write_text(json.dumps(manifest))
    out = tmp_path / "out.db"
    snapshot = newest.removesuffix(".zst")
    args = ["fetch", snapshot, "--from", "backup-host", "--out", str(out)]
    assert cli(lab, config, clock, *args).code == 1
    allowed = cli(lab, config, clock, *args, "--allow-unauthenticated")
    assert allowed.code == 0, allowed.stderr
    assert "is UNAUTHENTICATED (allowed by --allow-unauthenticated)" in allowed.stderr
    assert out.read_bytes() == (lab.snapshot_dir / snapshot).read_bytes()


def test_a_plaintext_copy_on_an_encrypting_target_is_refused(lab: Lab, tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "age.key").write_text(str(identity) + "\n")
    target = lab.ssh_target(age_recipients=[str(identity.to_public())])
    config = lab.write_config(tmp_path / "c.toml", targets=[target])
    clock = Clock()
    assert cli(lab, config, clock, "run").code == 0
    name = plant_forged(lab, "")  # in clear, where every copy is encrypted
    result = cli(
        lab, config, clock, "fetch", name, "--out", str(tmp_path / "o"),
        "--identity", str(tmp_path / "age.key"), "--allow-unauthenticated",
    )  # fmt: skip
    assert result.code == 1
    assert "says it is not encrypted, but this target encrypts every copy" in result.stderr


def test_a_plaintext_bundle_with_another_token_is_refused(
    lab: Lab, config: Path, tmp_path: Path
) -> None:
    clock = Clock()
    two_runs(lab, config, clock)
    _older, newest = ours(lab.remote_dir)
    bundle_path = lab.remote_dir / f"{newest}.bundle.tar"
    assert bundle_path.read_bytes().startswith(b"age-encryption.org/v1")  # never in clear
    rogue = io.BytesIO()
    with tarfile.open(fileobj=rogue, mode="w") as tar:
        for name, data in (
            ("bundle.json", json.dumps({"format": 1, "snapshot": newest, "node": "k3s-05",
                                        "k3s_version": "v1.33.4+k3s1", "created": "x"}).encode()),
            ("token", new_token().encode()),
        ):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bundle_path.write_bytes(rogue.getvalue())
    for local in lab.snapshot_dir.iterdir():
        local.unlink()
    token = (lab.data_dir / "server" / "token").read_text()
    token_file = lab.data_dir / "server" / "token"
    token_file.unlink()  # a node that needs the bundle's token
    result = cli(lab, config, clock, "restore", "--yes")
    assert result.code == 1
    assert "is in clear: ours never are on a target" in result.stderr
    assert not token_file.exists()  # the rogue token was never put in place
    token_file.write_text(token)


def test_a_manifest_planted_for_the_next_name_does_not_stop_it_being_shipped(
    lab: Lab, config: Path
) -> None:
    """A host that pre-plants tonight's manifest (names are predictable) still gets tonight's
    copy: the planted manifest does not authenticate, so the copy is shipped and replaces it."""
    clock = Clock()
    two_runs(lab, config, clock)
    _older, newest = ours(lab.remote_dir)
    genuine = (lab.remote_dir / newest).read_bytes()
    (lab.remote_dir / newest).write_bytes(b"planted")
    manifest = manifest_of(lab, newest)
    manifest.update(size=7, sha256=hashlib.sha256(b"planted").hexdigest(), mac="f" * 64)
    (lab.remote_dir / f"{newest}.json").write_text(json.dumps(manifest))
    result = cli(lab, config, clock, "run")
    assert result.code == 0, result.stderr
    assert f"{newest} on backup-host does not authenticate: shipping it again" in result.stderr
    assert (lab.remote_dir / newest).read_bytes() == genuine
    assert cli(lab, config, clock, "verify").code == 0


def test_a_forged_copy_in_a_bucket_is_refused(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The same forgery in an S3 bucket (moto): the bucket's word is worth no more."""
    setup = backed_up(lab, tmp_path, request, "s3")
    forged = lab.etcd.snapshot_save(lab.root / "attacker.db").read_bytes()
    name = stored_copy(setup.storage)
    plant(setup.storage, name, forged, compression="none", plain_size=len(forged),
          plain_sha256=hashlib.sha256(forged).hexdigest())  # fmt: skip
    before = setup.storage.files()
    out = tmp_path / "out.db"
    fetched = cli(lab, setup.config, setup.clock, "fetch", "latest", "--out", str(out))
    assert fetched.code == 1
    assert "is not authenticated (its manifest has no MAC" in fetched.stderr
    assert not out.exists()
    verified = cli(lab, setup.config, setup.clock, "verify")
    assert verified.code == 1 and "is not authenticated" in verified.stderr
    assert setup.storage.files() == before
