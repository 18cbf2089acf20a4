"""Fuzz: file names found in the snapshot dir and on targets (policy/naming, retention)."""

from __future__ import annotations

from hypothesis import strategies as st

from k3s_backup.policy import naming
from k3s_backup.policy.retention import GfsRules, plan_gfs
from k3s_backup.targets.base import final_of_temp
from tests.fuzz.harness import fuzz_target

CLUSTER = "k3s-lab"
REAL = [
    "k3s-lab-20261123-020000-k3s-05-1795399200",
    "k3s-lab-20261123-020000-k3s-05-1795399200.zip",
    "k3s-lab-20261123-020000-node.example.com-1795399200.db.zst.age",
    "k3s-lab-20261123-020000-k3s-05-1795399200.zst.json",
    "k3s-lab-20261123-020000-k3s-05-1795399200.zst.bundle.tar",
    ".k3s-lab-20261123-020000-k3s-05-1795399200.zst.partial-0123abcd",
]
# Any character may replace one of a real name's: Unicode digits above all.
_CHARACTERS = st.one_of(st.characters(), st.sampled_from("0123456789-._٤２\n ;"))


@st.composite
def names(draw: st.DrawFn) -> list[str]:
    found = []
    for _ in range(draw(st.integers(1, 8))):
        name = list(draw(st.sampled_from(REAL)))
        for _ in range(draw(st.integers(0, 4))):
            at = draw(st.integers(0, len(name)))
            if draw(st.booleans()) and at < len(name):
                name[at] = draw(_CHARACTERS)
            else:
                name.insert(at, draw(_CHARACTERS))
        found.append("".join(name))
    return found + draw(st.lists(st.text(max_size=80), max_size=3))


@fuzz_target(names(), examples=200)
def test_names(filenames: list[str]) -> None:
    parsed = []
    for filename in filenames:
        name = naming.parse(CLUSTER, filename)
        if name is not None:
            assert name.filename == filename and filename.isascii()
            assert naming.stamp_time(name.stamp) is not None
            parsed.append(name)
        naming.snapshot_of_manifest(CLUSTER, filename)
        naming.snapshot_of_bundle(CLUSTER, filename)
        final_of_temp(filename)
    plan = plan_gfs(parsed, GfsRules(last=2, daily=3, weekly=2, monthly=2))
    assert sorted(plan.keep + plan.remove) == sorted(parsed)
    if parsed:
        assert max(parsed) in plan.keep  # the newest is never removed
