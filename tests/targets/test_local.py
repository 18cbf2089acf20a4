"""The local target (a mounted disk) reads only regular files of ours: a name of ours that is a
symlink, to /dev/zero or to a file elsewhere, is refused and never followed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from k3s_backup.plumbing.streams import RefusedInput
from k3s_backup.targets.local import LocalTarget

NAME = "k3s-lab-20261123-020000-k3s-05-1795399200.zst"


@pytest.mark.parametrize("points_to", ["/dev/zero", "elsewhere"])
def test_a_symlink_under_one_of_our_names_is_refused(tmp_path: Path, points_to: str) -> None:
    directory = tmp_path / "usb"
    directory.mkdir()
    secret = tmp_path / "elsewhere"
    secret.write_bytes(b"not ours")
    link = directory / NAME
    link.symlink_to(points_to if points_to.startswith("/") else secret)
    target = LocalTarget("usb", directory)
    out = io.BytesIO()
    with pytest.raises(RefusedInput, match="is a symbolic link: refusing to follow it"):
        target.get(NAME, out, 1 << 30)
    with pytest.raises(RefusedInput, match="is a symbolic link"):
        target.sha256(NAME)
    assert out.getvalue() == b""
    assert target.list() == []  # never listed as a copy either
    stored = target.stat(NAME)
    assert stored is not None and stored.size == len(str(link.readlink()))  # the link's own
