"""Hostile file names in the snapshot directory and on the backup host: every command leaves
them alone, byte for byte, and none of them is listed, verified, rotated or cleaned as ours.

`run`'s rotation over such names is in tests/commands/test_run.py
(test_foreign_and_k3s_own_files_survive_rotation); here `prune`, `verify` and `list` too, names
that imitate our temporary uploads (which a run removes only when exactly of its own node's
shape), and a directory carrying one of our names."""

from __future__ import annotations

import json
from pathlib import Path

from k3s_backup.lab.lab import Lab
from tests.support.faults import Clock, cli, ours, snapshots, temporaries

STAMPED = "k3s-lab-20200101-000000-k3s-05-1577836800"
HOSTILE = [
    f"{STAMPED} ",
    f" {STAMPED}",
    f"{STAMPED}\n",
    f"{STAMPED}\nrm -rf ~",
    f"{STAMPED};rm -rf ~",
    f"-{STAMPED}",
    f"--{STAMPED}.zst",
    f"{STAMPED}.zst.json;x",
    f"{STAMPED}.zst.bundle.tar --force",
    f"$(touch pwned) {STAMPED}",
    f"`touch pwned`{STAMPED}",
    f".{STAMPED}.zst.partial-deadbeef;rm -rf ~",  # not exactly a temporary of ours
    f".{STAMPED}.zst.partial-nothex00",
    f".-{STAMPED}.zst.partial-deadbeef",
    f".{STAMPED}.zst\n.partial-deadbeef",
    f".{STAMPED.replace('k3s-05', 'k3s-06')}.zst.partial-deadbeef",  # another node uploading
    "-rf",
    "--help",
    "*",
]
OUR_STALE_TEMPORARY = f".{STAMPED}.zst.partial-0123abcd"  # left by a killed run of this node


def plant(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in HOSTILE:
        (directory / name).write_bytes(b"not ours: " + name.encode())
    (directory / f"{STAMPED}.zst").mkdir()  # our name, but a directory


def untouched(directory: Path) -> None:
    for name in HOSTILE:
        assert (directory / name).read_bytes() == b"not ours: " + name.encode(), repr(name)
    assert (directory / f"{STAMPED}.zst").is_dir()
    assert not (directory / "pwned").exists()


def test_hostile_names_are_left_alone_by_every_command(lab: Lab, tmp_path: Path) -> None:
    config = lab.write_config(tmp_path / "c.toml", keep_local=2, targets=[lab.ssh_target(keep=2)])
    for directory in (lab.snapshot_dir, lab.remote_dir):
        plant(directory)
    (lab.remote_dir / OUR_STALE_TEMPORARY).write_bytes(b"half an upload")
    clock = Clock()
    for _ in range(4):  # past both keeps: rotation runs
        result = cli(lab, config, clock, "run")
        assert result.code == 0, result.stderr
    assert temporaries(lab.remote_dir) == sorted(n for n in HOSTILE if ".partial-" in n)
    assert cli(lab, config, clock, "prune").code == 0
    verified = cli(lab, config, clock, "verify", "--json")
    assert verified.code == 0, verified.stdout
    listed = cli(lab, config, clock, "list", "--json")
    assert listed.code == 0
    names = {entry["name"] for entry in json.loads(listed.stdout)}
    names |= {finding["name"] for finding in json.loads(verified.stdout)}
    assert not names & {*HOSTILE, f"{STAMPED}.zst"}
    for directory in (lab.snapshot_dir, lab.remote_dir):
        untouched(directory)
    assert len(ours(lab.snapshot_dir)) == 2
    assert snapshots(lab.remote_dir) == ours(lab.snapshot_dir)


def _digits(ascii_digits: str, zero: int) -> str:
    """The same number in another script's digits (Python's `\\d` matches them all)."""
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in ascii_digits)


FULLWIDTH, ARABIC_INDIC = 0xFF10, 0x0660


# Names of our exact shape but for their digits or their date: not ours, so never touched.
NOT_A_TIME = [
    f"k3s-lab-{_digits('20260101-000000', FULLWIDTH)}-x-{_digits('4102444800', ARABIC_INDIC)}",
    "k3s-lab-20261399-256199-k3s-05-1577836800",
    "k3s-lab-20260230-020000-k3s-05-1577836800.zip",
]


def test_names_with_unicode_digits_or_impossible_dates_do_not_stop_a_run(
    lab: Lab, tmp_path: Path
) -> None:
    config = lab.write_config(tmp_path / "c.toml", keep_local=2, targets=[lab.ssh_target(keep=2)])
    for directory in (lab.snapshot_dir, lab.remote_dir):
        directory.mkdir(parents=True, exist_ok=True)
        for name in NOT_A_TIME:
            (directory / name).write_bytes(b"not ours: " + name.encode())
    clock = Clock()
    for _ in range(3):  # past both keeps: local and remote rotation run
        result = cli(lab, config, clock, "run")
        assert result.code == 0, result.stderr
        assert "Traceback" not in result.stderr
    local = [name for name in ours(lab.snapshot_dir) if name not in NOT_A_TIME]
    assert len(local) == 2
    assert [n for n in snapshots(lab.remote_dir) if n not in NOT_A_TIME] == local
    state = json.loads((lab.root / "state" / "state.json").read_text())
    assert state["last_run"]["exit_code"] == 0
    assert state["last_run"]["snapshot"]["name"] == local[-1]
    for directory in (lab.snapshot_dir, lab.remote_dir):
        for name in NOT_A_TIME:
            assert (directory / name).read_bytes() == b"not ours: " + name.encode(), repr(name)
