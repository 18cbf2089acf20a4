"""The restore bundle: what it holds, how it is stored, and that it travels and rotates with
its snapshot."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyrage
import pytest

from k3s_backup.catalogue import bundle, recovery_key
from k3s_backup.lab.lab import Lab
from tests.commands.test_restore import OUR_NAME, Clock, write_config
from tests.support.cli_runner import invoke

TOKEN = "K10abc::server:secret"


def node(tmp_path: Path) -> tuple[Path, Path]:
    data_dir, config_dir = tmp_path / "k3s", tmp_path / "etc"
    (data_dir / "server").mkdir(parents=True)
    (data_dir / "server" / "token").write_text(TOKEN + "\n")
    (config_dir / "config.yaml.d").mkdir(parents=True)
    (config_dir / "config.yaml").write_text("write-kubeconfig-mode: '0644'\n")
    (config_dir / "config.yaml.d" / "10-etcd.yaml").write_text("etcd-expose-metrics: true\n")
    return data_dir, config_dir


def fake_k3s_version(tmp_path: Path, version: str) -> str:
    """A stand-in `k3s` that only answers `--version`, as K3s prints it."""
    script = tmp_path / "bin" / "k3s"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho "k3s version {version} (abcdef12)"\necho "go version"\n')
    script.chmod(0o755)
    return str(script)


def collect(tmp_path: Path, k3s_bin: str) -> bundle.Bundle:
    data_dir, config_dir = node(tmp_path)
    return bundle.collect(
        snapshot="k3s-lab-20261123-020000-k3s-05-1795399200",
        node="k3s-05",
        created="2026-11-23T02:00:00+00:00",
        data_dir=data_dir,
        config_dir=config_dir,
        k3s_bin=k3s_bin,
        environ={"PATH": "/usr/bin:/bin"},
    )


def test_collect_write_read_round_trip(tmp_path: Path) -> None:
    made = collect(tmp_path, fake_k3s_version(tmp_path, "v1.33.4+k3s1"))
    assert made.token == TOKEN
    assert made.k3s_version == "v1.33.4+k3s1"
    assert made.config_files == {
        "config.yaml": b"write-kubeconfig-mode: '0644'\n",
        "config.yaml.d/10-etcd.yaml": b"etcd-expose-metrics: true\n",
    }
    path = tmp_path / "bundles" / "x.bundle.tar"
    bundle.write(made, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert bundle.read(path) == made
    assert [p.name for p in path.parent.iterdir()] == ["x.bundle.tar"]  # no temporary left


def test_the_encryption_config_travels_in_the_bundle_when_the_node_has_one(
    tmp_path: Path,
) -> None:
    plain = collect(tmp_path / "plain", str(tmp_path / "no-such-k3s"))
    assert bundle.ENCRYPTION_CONFIG not in plain.config_files
    data_dir, config_dir = node(tmp_path / "encrypting")
    config = b'{"kind": "EncryptionConfiguration"}'
    bundle.encryption_config_path(data_dir).parent.mkdir(parents=True)
    bundle.encryption_config_path(data_dir).write_bytes(config)
    made = bundle.collect(
        "x",
        "k3s-05",
        "2026-11-23T02:00:00+00:00",
        data_dir,
        config_dir,
        str(tmp_path / "no-such-k3s"),
        {},
    )
    assert made.config_files[bundle.ENCRYPTION_CONFIG] == config
    path = tmp_path / "x.bundle.tar"
    bundle.write(made, path)
    assert bundle.read(path).config_files[bundle.ENCRYPTION_CONFIG] == config


def test_an_unanswering_k3s_leaves_the_version_unknown(tmp_path: Path) -> None:
    assert collect(tmp_path, str(tmp_path / "no-such-k3s")).k3s_version is None


def test_a_node_without_token_gets_no_bundle(tmp_path: Path) -> None:
    data_dir, config_dir = node(tmp_path)
    (data_dir / "server" / "token").unlink()
    with pytest.raises(bundle.BundleError, match=r"cannot read .*server/token"):
        bundle.collect("s", "n", "c", data_dir, config_dir, "k3s", {})


def tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["../token", "/etc/shadow", "config.yaml.d/../../x", "other"])
def test_a_foreign_member_is_refused(name: str) -> None:
    with pytest.raises(bundle.BundleError, match="not our bundle"):
        bundle.from_bytes(tar_with(tarfile.TarInfo(name), b"x"), "test")


def test_a_symlink_member_is_refused() -> None:
    link = tarfile.TarInfo("token")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    with pytest.raises(bundle.BundleError, match="not our bundle"):
        bundle.from_bytes(tar_with(link), "test")


def test_a_damaged_bundle_is_named() -> None:
    with pytest.raises(bundle.BundleError, match="damaged restore bundle"):
        bundle.from_bytes(b"\x00" * 700, "backup-host: x.bundle.tar")


def test_version_order() -> None:
    key = bundle.version_key
    assert key("v1.33.10+k3s1") > key("v1.33.9+k3s3")  # type: ignore[operator]
    assert key("v1.33.4+k3s2") > key("v1.33.4+k3s1")  # type: ignore[operator]
    assert key("v1.34.0-rc1+k3s1") is not None
    assert key("unknown") is None


def bundles(directory: Path) -> list[str]:
    return sorted(p.name.removesuffix(".bundle.tar") for p in directory.glob("*.bundle.tar"))


def snapshots(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if OUR_NAME.match(p.name))


def test_run_ships_a_bundle_beside_each_snapshot_and_rotates_it_away(
    lab: Lab, tmp_path: Path
) -> None:
    config = write_config(
        lab, tmp_path / "config.toml", keep_local=1, targets=[lab.ssh_target(keep=2)]
    )
    clock = Clock()
    for _ in range(3):
        result = invoke(["--config", str(config), "run"], environ=lab.env(), now=clock)
        assert result.code == 0, result.stderr
    state_bundles = lab.root / "state" / "bundles"
    assert (
        bundles(lab.remote_dir) == snapshots(lab.remote_dir) and len(bundles(lab.remote_dir)) == 2
    )
    assert bundles(state_bundles) == snapshots(lab.snapshot_dir)
    assert not list(lab.snapshot_dir.glob("*.tar"))  # K3s would take it for a snapshot
    shipped = lab.remote_dir / f"{snapshots(lab.remote_dir)[-1]}.bundle.tar"
    assert shipped.stat().st_mode & 0o777 == 0o600
    assert shipped.read_bytes().startswith(b"age-encryption.org/v1")  # never in clear
    key = recovery_key.load(lab.recovery_key)
    assert key is not None
    got = bundle.from_bytes(
        pyrage.decrypt(shipped.read_bytes(), [recovery_key.age_identity(key)]), str(shipped)
    )
    assert got.token == (lab.data_dir / "server" / "token").read_text().strip()
    assert got.node == "k3s-05" and got.k3s_version == "v1.33.4+k3s1"


def test_a_target_missing_a_bundle_gets_it_on_the_next_run(lab: Lab, tmp_path: Path) -> None:
    config = write_config(lab, tmp_path / "config.toml")
    clock = Clock()
    assert invoke(["--config", str(config), "run"], environ=lab.env(), now=clock).code == 0
    [first] = list(lab.remote_dir.glob("*.bundle.tar"))
    first.unlink()
    assert invoke(["--config", str(config), "run"], environ=lab.env(), now=clock).code == 0
    assert first.exists()


def _octal(number: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, number)


def sparse_member(name: str, claimed: int) -> bytes:
    """A GNU sparse tar header claiming `claimed` bytes of zeros, with no data block at all."""
    header = bytearray(512)
    header[0 : len(name)] = name.encode()
    header[100:108] = _octal(0o600, 8)
    header[108:116] = header[116:124] = _octal(0, 8)
    header[124:136] = header[136:148] = _octal(0, 12)
    header[156:157] = b"S"
    header[257:265] = b"ustar  \0"
    header[386:398], header[398:410] = _octal(claimed, 12), _octal(0, 12)
    header[483:495] = _octal(claimed, 12)
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def test_a_bundle_of_sparse_members_is_refused_before_it_fills_the_memory():
    # 26 KiB of headers claiming 50 x 4 MiB: read, they would take 200 MiB.
    data = b"".join(sparse_member(f"config.yaml.d/m{i}", 4 << 20) for i in range(50))
    with pytest.raises(bundle.BundleError, match=r"unexpected member 'config\.yaml\.d/m0'"):
        bundle.from_bytes(data + b"\0" * 1024, "planted")


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b"[1, 2]", "is not a JSON object"),
        (b'"snapshot"', "is not a JSON object"),
    ],
)
def test_a_bundle_whose_meta_is_no_json_object_is_damaged(meta, problem):
    data = _tar({"bundle.json": meta, "token": b"K10x\n"})
    with pytest.raises(bundle.BundleError, match=problem):
        bundle.from_bytes(data, "planted")


def test_a_bundle_naming_one_member_twice_is_refused():
    single = _tar({"token": b"K10a\n"})[:1024]  # its header and data block, no end marker
    with pytest.raises(bundle.BundleError, match="unexpected member 'token'"):
        bundle.from_bytes(single + _tar({"token": b"K10b\n"}), "planted")


def test_a_k3s_version_that_is_no_string_is_shown_as_text():
    meta = b'{"snapshot": "s", "node": "n", "created": "c", "k3s_version": 133}'
    parsed = bundle.from_bytes(_tar({"bundle.json": meta, "token": b"K10x\n"}), "planted")
    assert parsed.k3s_version == "133"
