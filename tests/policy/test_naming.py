from datetime import datetime

import pytest

from k3s_backup.policy import naming

CLUSTER = "k3s-homelab"


def test_prefix_is_cluster_and_local_time_stamp():
    when = datetime(2026, 11, 23, 2, 0, 0)
    assert naming.snapshot_prefix(CLUSTER, when) == "k3s-homelab-20261123-020000"


@pytest.mark.parametrize(
    ("filename", "node", "unix", "suffix"),
    [
        ("k3s-homelab-20261123-020000-k3s-05-1795399200", "k3s-05", 1795399200, ""),
        ("k3s-homelab-20261123-020000-k3s-05-1795399200.zip", "k3s-05", 1795399200, ".zip"),
        ("k3s-homelab-20261123-020000-node.example.com-17", "node.example.com", 17, ""),
        ("k3s-homelab-20261123-020000-a-b-c-1795399200", "a-b-c", 1795399200, ""),
    ],
)
def test_parse_ours(filename, node, unix, suffix):
    parsed = naming.parse(CLUSTER, filename)
    assert parsed is not None
    assert (parsed.node, parsed.unix, parsed.suffix) == (node, unix, suffix)
    assert parsed.base == filename.removesuffix(".zip")


@pytest.mark.parametrize(
    "filename",
    [
        "etcd-snapshot-k3s-05-1795399200",  # K3s's own
        "on-demand-k3s-05-1795399200",
        "k3s-homelab-20261123-020000-k3s-05-1795399200.part",  # etcd still writing it
        "k3s-homelab-20261123-020000-k3s-05-1795399200.json",  # a manifest
        "k3s-homelab-2-20261123-020000-k3s-05-1795399200",  # another cluster
        "k3s-homelab-20261123-020000-k3s-05-",
        "k3s-homelab-20261123-020000-k3s 05-1795399200",
        "-k3s-homelab-20261123-020000-k3s-05-1795399200",
        "k3s-homelab-20261123-020000-k3s-05-1795399200\n",
        ".k3s-homelab-20261123-020000-k3s-05-1795399200.partial-1234abcd",
        "k3s-homelab-20261123-020000-k3s;rm -rf-1795399200",
    ],
)
def test_foreign_names_are_not_ours(filename):
    assert naming.parse(CLUSTER, filename) is None


def test_ours_orders_by_time_in_name_not_by_listing_order():
    names = [
        "k3s-homelab-20261125-020000-n-1795572000",
        "etcd-snapshot-n-1795000000",
        "k3s-homelab-20261123-020000-n-1795399200",
        "k3s-homelab-20261124-020000-n-1795485600.zip",
    ]
    assert [n.filename for n in naming.ours(CLUSTER, names)] == [
        "k3s-homelab-20261123-020000-n-1795399200",
        "k3s-homelab-20261124-020000-n-1795485600.zip",
        "k3s-homelab-20261125-020000-n-1795572000",
    ]


def test_produced_by_matches_only_this_prefix():
    names = [
        "k3s-homelab-20261123-020000-n-1795399200",
        "k3s-homelab-20261123-020001-n-1795399201",
        "etcd-snapshot-n-1795399200",
    ]
    produced = naming.produced_by("k3s-homelab-20261123-020000", CLUSTER, names)
    assert [p.filename for p in produced] == ["k3s-homelab-20261123-020000-n-1795399200"]


def test_manifest_names_map_back_to_our_snapshots_only():
    ours = "k3s-homelab-20261123-020000-n-1795399200"
    assert naming.snapshot_of_manifest(CLUSTER, naming.manifest_name(ours)) == ours
    assert naming.snapshot_of_manifest(CLUSTER, "etcd-snapshot-n-1.json") is None
    assert naming.snapshot_of_manifest(CLUSTER, ours) is None


def test_our_files_are_copies_manifests_and_bundles_of_this_cluster_only():
    ours = "k3s-homelab-20261123-020000-n-1795399200"
    sidecars = (naming.manifest_name(ours), naming.bundle_name(ours))
    assert [naming.snapshot_of_sidecar(CLUSTER, name) for name in sidecars] == [ours, ours]
    assert naming.snapshot_of_sidecar(CLUSTER, ours) is None
    assert all(naming.is_our_file(CLUSTER, name) for name in (ours, *sidecars))
    foreign = ("etcd-snapshot-n-1.json", "other-20261123-020000-n-1.bundle.tar", ours + ".txt")
    assert not any(naming.is_our_file(CLUSTER, name) for name in foreign)


@pytest.mark.parametrize(
    ("cluster", "problem"),
    [
        ("k3s-homelab", None),
        ("a.b_c-1", None),
        ("etcd-snapshot-prod", "must not start with 'etcd-snapshot'"),
        ("bad name", "may only contain"),
        ("semi;colon", "may only contain"),
        ("", "may only contain"),
    ],
)
def test_cluster_name_problem(cluster, problem):
    found = naming.cluster_name_problem(cluster)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def fullwidth(ascii_digits: str) -> str:
    return "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in ascii_digits)


def arabic_indic(ascii_digits: str) -> str:
    return "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in ascii_digits)


@pytest.mark.parametrize(
    "filename",
    [
        # Unicode digits match `\d`: these must not be ours (strptime and int() choke on them).
        f"k3s-homelab-{fullwidth('20260101-000000')}-x-{arabic_indic('4102444800')}",
        f"k3s-homelab-20261123-020000-k3s-05-{arabic_indic('1795399200')}",
        f"k3s-homelab-{arabic_indic('20261123')}-020000-k3s-05-1795399200",
        # ASCII digits, but no such date or time.
        "k3s-homelab-20261399-256199-x-1795399200",
        "k3s-homelab-20260230-020000-x-1795399200",
        "k3s-homelab-00000000-000000-x-0",
    ],
)
def test_names_that_do_not_parse_as_times_are_not_ours(filename):
    assert naming.parse(CLUSTER, filename) is None
    assert naming.ours(CLUSTER, [filename]) == []
