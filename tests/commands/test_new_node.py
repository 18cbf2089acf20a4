"""After the disk died: a replacement node finds the lost cluster's copies, never backs up its own
empty cluster over them, and restores the lost one, byte for byte (issue: new-node recovery).

Real parts: the etcd of the lab (restarted empty for the new node), the sshd as backup host;
`k3s` and `systemctl` are the lab's stand-ins, which check the restored snapshot's bootstrap data
against the token, as K3s does.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from k3s_backup.lab.fake_k3s import FakeK3sState, install_fake_k3s, new_token
from k3s_backup.lab.fake_k3s_server import bootstrap_key
from k3s_backup.lab.lab import Lab
from tests.commands.test_restore import Clock
from tests.commands.test_setup import host_fingerprint, setup_args
from tests.support.cli_runner import Result, invoke
from tests.support.k8s_data import namespace

OLD_UID = "5b0c1a2e-0000-4000-8000-00000000a11c"
NEW_UID = "9f3e7d10-0000-4000-8000-0000000000be"
CREATED = 1767225600  # 2026-01-01T00:00:00Z


def install_cluster(lab: Lab, uid: str, node: str, created: int = CREATED) -> None:
    """What a K3s install writes first: kube-system, its node, the bootstrap data under the
    token's hash."""
    token = (lab.data_dir / "server" / "token").read_text().strip()
    lab.etcd.put("/registry/namespaces/kube-system", namespace("kube-system", uid, created))
    lab.etcd.put("/registry/namespaces/default", namespace("default", uid + "-d", created))
    lab.etcd.put(f"/registry/minions/{node}", b"k8s\x00node " + node.encode())
    lab.etcd.put(bootstrap_key(token), hashlib.sha256(token.encode()).digest())


def set_state(lab: Lab, **changes: object) -> None:
    state = FakeK3sState.load(lab.state_file)
    for key, value in changes.items():
        setattr(state, key, value)
    state.save(lab.state_file)


def systemctl(lab: Lab, verb: str) -> None:
    subprocess.run(["systemctl", verb, "k3s"], env=lab.env(), check=True, timeout=120)


@dataclass
class Node:
    """A K3s server node as the operator sees it: its config, and a CLI to run on it."""

    lab: Lab
    config: Path
    clock: Clock

    def __call__(self, *args: str, stdin: str = "") -> Result:
        return invoke(
            ["--config", str(self.config), *args],
            environ=self.lab.env(),
            stdin=stdin,
            now=self.clock,
        )


def k3s_settings(lab: Lab) -> dict[str, object]:
    return {"bin": lab.bin_dir / "k3s", "data_dir": lab.data_dir, "config_dir": lab.root / "etc"}


def old_node(lab: Lab, tmp_path: Path) -> Node:
    config = lab.write_config(
        tmp_path / "old-config.toml", k3s=k3s_settings(lab), restore={"ready_timeout": 60}
    )
    return Node(lab, config, Clock())


def remote_tree(lab: Lab) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(lab.remote_dir.iterdir())}


def local_snapshots(lab: Lab) -> list[str]:
    return sorted(p.name for p in lab.snapshot_dir.iterdir()) if lab.snapshot_dir.exists() else []


def lose_the_disk(lab: Lab, old: Node, paper: Path) -> None:
    """Everything on the node is gone: etcd data, snapshots, token, state, config, SSH key and
    recovery key (the operator kept the recovery key on `paper`)."""
    paper.write_text(lab.recovery_key.read_text())
    lab.recovery_key.unlink()
    systemctl(lab, "stop")
    shutil.rmtree(lab.data_dir / "server")
    shutil.rmtree(lab.root / "state")
    old.config.unlink()
    lab.sshd.client_key.unlink()
    lab.sshd.authorized_keys.write_text("")  # the old node's key: revoked on the backup host


def new_install(lab: Lab, node: str) -> None:
    """A fresh K3s: an empty datastore, a new token, a new cluster (a new kube-system UID)."""
    token_file = lab.data_dir / "server" / "token"
    token_file.parent.mkdir(parents=True)
    token = new_token()
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    set_state(lab, token=token, node_name=node)
    systemctl(lab, "start")
    install_cluster(lab, NEW_UID, node, created=CREATED + 86400 * 300)


def new_config(lab: Lab, tmp_path: Path, node: str) -> tuple[Path, Path]:
    """install.sh's config on the new node (paths only, no target): (root, config file)."""
    root = tmp_path / "new-root"
    config = root / "etc" / "k3s-backup" / "config.toml"
    config.parent.mkdir(parents=True)
    lab.write_config(
        config,
        targets=None,
        node_name=node,
        k3s=k3s_settings(lab),
        restore={"ready_timeout": 60},
        recovery_key_file=root / "etc" / "k3s-backup" / "recovery.key",
    )
    return root, config


def new_node(lab: Lab, tmp_path: Path, node: str) -> Node:
    """install.sh's config, then setup: the host key checked against the fingerprint the
    operator kept, a new key authorized on the backup host."""
    root, config = new_config(lab, tmp_path, node)
    first = invoke(
        setup_args(lab, root, "--accept-host-key", host_fingerprint(lab)), environ=lab.env()
    )
    assert first.code == 1, first.stderr  # the new key is not authorized yet
    [line] = [ln.strip() for ln in first.stdout.splitlines() if ln.strip().startswith("restrict")]
    lab.sshd.authorized_keys.write_text(line + "\n")
    clock = Clock()
    clock.current += timedelta(days=30)  # the new node comes up weeks after the last backup
    return Node(lab, config, clock)


def setup_again(lab: Lab, node: Node, *extra: str, stdin: str = "") -> Result:
    root = node.config.parents[2]
    return invoke(setup_args(lab, root, *extra), environ=lab.env(), stdin=stdin)


def disaster(lab: Lab, tmp_path: Path, node_name: str) -> tuple[Node, dict[str, bytes]]:
    """Three nightly runs of the old cluster, then the dead disk and a new install; returns
    the new node (set up, no backup taken) and the keys as they were at the last backup."""
    install_cluster(lab, OLD_UID, "k3s-05")
    lab.etcd.put("/registry/secrets/default/db", b"s3cr3t")
    old = old_node(lab, tmp_path)
    for night in range(3):
        lab.etcd.put("/registry/configmaps/default/app", f"v{night}".encode())
        assert old("run").code == 0
    at_backup = lab.etcd.get_all()
    paper = tmp_path / "kept-on-paper.txt"
    lose_the_disk(lab, old, paper)
    new_install(lab, node_name)
    node = new_node(lab, tmp_path, node_name)
    before = remote_tree(lab)
    without = setup_again(lab, node)  # the operator forgot the recovery key
    assert without.code == 2
    assert "authenticated with the cluster's recovery key, and this node has none" in (
        without.stderr
    )
    assert "--recovery-key FILE" in without.stderr
    if node_name == "k3s-05":  # given as the file it was kept in
        done = setup_again(lab, node, "--recovery-key", str(paper))
    else:  # typed (here: piped) at the prompt
        done = setup_again(lab, node, "--recovery-key", "-", stdin=paper.read_text())
    assert done.code == 0, done.stderr
    assert "First backup" in done.stdout and "not taken" in done.stdout
    assert f"cluster {OLD_UID}, created 2026-01-01T00:00:00Z" in done.stdout
    assert "k3s-backup restore --from 127.0.0.1" in done.stdout
    assert "k3s-backup setup --new-cluster" in done.stdout
    assert "Keep these OFF this node" in done.stdout
    assert remote_tree(lab) == before  # no copy of the empty cluster was made
    assert local_snapshots(lab) == []
    return node, at_backup


@pytest.mark.parametrize("node_name", ["k3s-05", "k3s-07"], ids=["same-name", "other-name"])
def test_a_replacement_node_restores_the_lost_cluster_byte_for_byte(
    lab: Lab, tmp_path: Path, node_name: str
) -> None:
    node, at_backup = disaster(lab, tmp_path, node_name)
    plan = node("restore", "--from", "127.0.0.1", "--dry-run")
    assert plan.code == 0, plan.stderr
    assert f"the snapshot holds:     cluster {OLD_UID}" in plan.stdout
    assert f"this node now holds:    cluster {NEW_UID}" in plan.stdout
    assert "is of another cluster than the one this node runs now" in plan.stderr
    assert f"this node ({node_name}) Ready" in plan.stdout

    result = node("restore", "--from", "127.0.0.1", "--yes")
    assert result.code == 0, result.stderr
    assert lab.etcd.get_all() == at_backup  # every key, every value, byte for byte
    assert "complete" in result.stdout
    if node_name == "k3s-05":
        assert "not Ready" not in result.stderr
    else:  # the lost server, under its old name, is named with the command that removes it
        assert "nodes that are not Ready: k3s-05" in result.stderr
        assert f"`{lab.bin_dir / 'k3s'} kubectl delete node k3s-05`" in result.stderr
    # From now on this node backs up the restored cluster: the same chain, no refusal.
    after = node("run")
    assert after.code == 0, after.stderr
    assert "another cluster" not in after.stderr


def test_scheduled_runs_before_the_restore_destroy_nothing_and_alert(
    lab: Lab, tmp_path: Path
) -> None:
    node, _ = disaster(lab, tmp_path, "k3s-05")
    before = remote_tree(lab)
    for _night in range(10):
        result = node("run", "--log-only")
        assert result.code == 1
    assert remote_tree(lab) == before  # every copy of the lost cluster, byte-identical
    assert local_snapshots(lab) == []  # and no snapshot of the empty one kept
    log = (lab.root / "k3s-backup.log").read_text()
    assert log.count("no backup taken: this node's cluster") == 10
    assert f"cluster {OLD_UID}, created 2026-01-01T00:00:00Z, " in log
    status = invoke(
        ["--config", str(node.config), "status", "--root", str(node.config.parents[2])],
        environ=lab.env(),
    )
    assert status.code == 1
    assert "ended failed" in status.stdout
    assert re.search(
        rf"WARN: 127\.0\.0\.1 holds 3 copies of another cluster named k3s-lab \(cluster {OLD_UID}.*"
        r"restore them: `k3s-backup restore --from 127\.0\.0\.1`",
        status.stdout,
    ), status.stdout


def test_restore_yes_with_two_clusters_and_no_name_refuses_listing_both(
    lab: Lab, tmp_path: Path
) -> None:
    node, at_backup = disaster(lab, tmp_path, "k3s-05")
    forced = node("run", "--new-cluster")  # the operator insists this is a new cluster
    assert forced.code == 0, forced.stderr
    assert "holds 3 copies of another cluster named k3s-lab" in forced.stderr
    assert len([p for p in lab.remote_dir.iterdir() if p.name.endswith(".zst")]) == 4
    keys = lab.etcd.get_all()

    refused = node("restore", "--yes")
    assert refused.code == 2
    assert "Copies of 2 different clusters named k3s-lab are here" in refused.stderr
    assert f"cluster {OLD_UID}" in refused.stderr and f"cluster {NEW_UID}" in refused.stderr
    assert "--cluster" in refused.stderr
    assert lab.etcd.get_all() == keys  # nothing was stopped or changed

    # The older cluster is number 2; then yes to its saved token, then the cluster name.
    asked = node("restore", stdin="2\ny\nk3s-lab\n")
    assert asked.code == 0, asked.stderr
    assert lab.etcd.get_all() == at_backup

    chosen = node("restore", "--cluster", NEW_UID[:8], "--yes", "--dry-run")
    assert chosen.code == 0, chosen.stderr
    assert f"the snapshot holds:     cluster {NEW_UID}" in chosen.stdout


def test_rotation_never_removes_another_clusters_copies(lab: Lab, tmp_path: Path) -> None:
    node, _ = disaster(lab, tmp_path, "k3s-05")
    old_copies = remote_tree(lab)
    assert node("run", "--new-cluster").code == 0
    for _night in range(9):  # more than keep = 7 of the new cluster's own
        result = node("run")
        assert result.code == 0, result.stderr
    tree = remote_tree(lab)
    assert {name: tree[name] for name in old_copies} == old_copies
    assert len([n for n in tree if n.endswith(".zst")]) == 3 + 7
    pruned = node("prune")
    assert pruned.code == 0, pruned.stderr
    assert {name: remote_tree(lab)[name] for name in old_copies} == old_copies


def test_two_servers_of_one_cluster_share_a_target_as_one_identity(
    lab: Lab, tmp_path: Path
) -> None:
    install_cluster(lab, OLD_UID, "k3s-05")
    first = old_node(lab, tmp_path)
    assert first("run").code == 0
    # A second server of the same cluster: its own K3s CLI (node name k3s-06) on the same etcd.
    bin_2 = tmp_path / "server-2" / "bin"
    state = FakeK3sState.load(lab.state_file)
    state.node_name = "k3s-06"
    state.data_dir = tmp_path / "server-2" / "k3s"
    install_fake_k3s(bin_2, state)
    second_config = lab.write_config(
        tmp_path / "server-2.toml",
        node_name="k3s-06",
        snapshot_dir=state.data_dir / "server" / "db" / "snapshots",
        state_dir=tmp_path / "server-2" / "state",
        k3s={"bin": bin_2 / "k3s", "data_dir": state.data_dir},
    )
    second = Node(lab, second_config, Clock())
    for _night in range(2):
        for server in (first, second):
            result = server("run")
            assert result.code == 0, result.stderr
            assert "another cluster" not in result.stderr + result.stdout
    names = [p.name for p in lab.remote_dir.iterdir() if p.name.endswith(".zst")]
    assert len([n for n in names if "-k3s-05-" in n]) == 3
    assert len([n for n in names if "-k3s-06-" in n]) == 2


def test_without_the_recovery_key_restore_says_exactly_what_is_missing(
    lab: Lab, tmp_path: Path
) -> None:
    node, _ = disaster(lab, tmp_path, "k3s-05")
    key = node.config.parent / "recovery.key"
    key.rename(tmp_path / "elsewhere.key")
    keys = lab.etcd.get_all()
    result = node("restore", "--from", "127.0.0.1", "--yes")
    assert result.code == 1
    assert "authenticated with the cluster's recovery key, which this node does not have" in (
        result.stderr
    )
    assert "`k3s-backup recovery-key set FILE`" in result.stderr
    assert lab.etcd.get_all() == keys
    put_back = node("recovery-key", "set", str(tmp_path / "elsewhere.key"))
    assert put_back.code == 0, put_back.stderr
    assert node("restore", "--from", "127.0.0.1", "--yes").code == 0
