"""Benchmark `k3s-backup inspect` against `etcdctl snapshot status` on one large snapshot.

Loads a throwaway etcd on loopback with Kubernetes-like keys (through etcd's v3 JSON gateway,
128 puts per transaction, several transactions in flight), overwrites and deletes some of them
for history, takes a snapshot, then runs each reader as a child process and reports its wall
time and peak RSS (getrusage of that child), and the ratios.

    python bench/bench_inspect.py --size-mb 400
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from k3s_backup.lab.etcd import EtcdServer

TXN_OPS = 128  # etcd's default --max-txn-ops
IN_FLIGHT = 8
RESOURCES = ("pods", "configmaps", "secrets", "events", "replicasets", "endpointslices")
NAMESPACES = ("default", "kube-system", "monitoring", "web", "db")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _post(endpoint: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        endpoint + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        result: dict[str, Any] = json.load(reply)
        return result


def _key(index: int) -> bytes:
    resource = RESOURCES[index % len(RESOURCES)]
    namespace = NAMESPACES[index // len(RESOURCES) % len(NAMESPACES)]
    return f"/registry/{resource}/{namespace}/object-{index:08}".encode()


def _value(rng: random.Random) -> bytes:
    # Mostly small objects, some large ones, as in a real cluster; random bytes do not compress.
    size = rng.choice((600, 1200, 2500, 4000, 16000))
    return b"k8s\x00" + rng.randbytes(size)


def _txn(endpoint: str, ops: list[dict[str, Any]]) -> None:
    _post(endpoint, "/v3/kv/txn", {"success": ops})


def load(endpoint: str, size_mb: int, seed: int = 8) -> int:
    """Write about `size_mb` MiB of values; every 5th key twice, every 50th deleted after."""
    rng = random.Random(seed)
    written = index = 0
    batches: list[list[dict[str, Any]]] = []
    while written < size_mb << 20:
        ops = []
        for _ in range(TXN_OPS):
            value = _value(rng)
            ops.append({"requestPut": {"key": _b64(_key(index)), "value": _b64(value)}})
            written += len(value)
            index += 1
        batches.append(ops)
    updates = [
        {"requestPut": {"key": _b64(_key(i)), "value": _b64(_value(rng))}}
        for i in range(0, index, 5)
    ]
    deletes = [{"requestDeleteRange": {"key": _b64(_key(i))}} for i in range(0, index, 50)]
    for ops in (updates, deletes):
        batches += [ops[i : i + TXN_OPS] for i in range(0, len(ops), TXN_OPS)]
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(lambda ops: _txn(endpoint, ops), batches))
    return index


# Linux carries ru_maxrss across fork and exec, so a child forked from this (large) process
# would report our RSS as its own: a small, fresh Python launches each measured command.
_LAUNCHER = """
import json, os, subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    start = time.monotonic()
    proc = subprocess.Popen(sys.argv[2:], stdout=out)
    _pid, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"seconds": time.monotonic() - start, "maxrss_kib": usage.ru_maxrss,
                  "exit": os.waitstatus_to_exitcode(status)}))
"""


def measure(command: list[str]) -> tuple[float, int, bytes]:
    """(wall seconds, peak RSS in bytes, stdout) of `command` as a child process."""
    with tempfile.NamedTemporaryFile() as out:
        launched = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, out.name, *command],
            capture_output=True,
            env={**os.environ, "ETCDCTL_API": "3"},
            check=True,
        )
        result = json.loads(launched.stdout)
        if result["exit"] != 0:
            raise SystemExit(f"{command[0]} failed with exit {result['exit']}")
        return (
            float(result["seconds"]),
            int(result["maxrss_kib"]) * 1024,
            Path(out.name).read_bytes(),
        )


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
            keys = load(etcd.endpoint, args.size_mb)
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
