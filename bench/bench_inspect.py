"""Benchmark `k3s-backup inspect` against `etcdctl snapshot status` on one large snapshot.

Loads a throwaway etcd on loopback with Kubernetes-like keys (through etcd's v3 JSON gateway,
128 puts per transaction, several transactions in flight), overwrites and deletes some of them
for history, takes a snapshot, then runs each reader as a child process and reports its wall
time and peak RSS (getrusage of that child), and the ratios.

    python bench/bench_inspect.py --size-mb 400
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from common import load, measure

from k3s_backup.lab.etcd import EtcdServer

RESOURCES = ("pods", "configmaps", "secrets", "events", "replicasets", "endpointslices")
NAMESPACES = ("default", "kube-system", "monitoring", "web", "db")


def _entry(rng: random.Random, index: int) -> tuple[bytes, bytes]:
    resource = RESOURCES[index % len(RESOURCES)]
    namespace = NAMESPACES[index // len(RESOURCES) % len(NAMESPACES)]
    key = f"/registry/{resource}/{namespace}/object-{index:08}".encode()
    # Mostly small objects, some large ones, as in a real cluster; random bytes do not compress.
    size = rng.choice((600, 1200, 2500, 4000, 16000))
    return key, b"k8s\x00" + rng.randbytes(size)


def _warm(path: Path) -> None:
    """Read the file once so both readers start from the page cache."""
    with path.open("rb") as stream:
        while stream.read(1 << 24):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300, help="MiB of values to write")
    parser.add_argument("--workdir", type=Path, help="keep etcd and the snapshot here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        root = args.workdir or Path(temp)
        root.mkdir(parents=True, exist_ok=True)
        snapshot = root / "bench.db"
        with EtcdServer(root / "etcd") as etcd:
            started = time.monotonic()
            keys = load(etcd.endpoint, args.size_mb, _entry, 8, rewrite_every=5, delete_every=50)
            print(f"loaded {keys} keys in {time.monotonic() - started:.1f} s")
            etcd.snapshot_save(snapshot)
        size = snapshot.stat().st_size
        _warm(snapshot)
        base_time, base_rss, base_out = measure(
            ["etcdctl", "snapshot", "status", "-w", "json", str(snapshot)]
        )
        cli = "from k3s_backup.cli import main; raise SystemExit(main())"
        ins_time, ins_rss, ins_out = measure(
            [sys.executable, "-c", cli, "inspect", str(snapshot), "--json"]
        )
        baseline, reading = json.loads(base_out), json.loads(ins_out)
        agree = (baseline["revision"], baseline["totalKey"]) == (
            reading["revision"],
            reading["bucket_entries"],
        )
        mib = 1 << 20
        print(
            f"snapshot {size / mib:.0f} MiB, {reading['keys']} live keys, "
            f"{reading['revisions']} revisions"
        )
        print(f"etcdctl snapshot status  {base_time:6.2f} s  peak RSS {base_rss / mib:7.1f} MiB")
        print(f"k3s-backup inspect       {ins_time:6.2f} s  peak RSS {ins_rss / mib:7.1f} MiB")
        print(
            f"ratios inspect/etcdctl: time {ins_time / base_time:.2f}, "
            f"RSS {ins_rss / base_rss:.2f}; inspect RSS / file size {ins_rss / size:.2f}"
        )
        print(f"revision and entry count agree with etcdctl: {agree}")
        if not agree:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
