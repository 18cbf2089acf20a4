"""Peak memory of `k3s-backup extract` and `inspect` on large snapshots: flat in their size.

Loads a throwaway etcd on loopback with ConfigMaps and Secrets stored as the API server stores
them (`k8s\\x00` + runtime.Unknown, encoded here from the field numbers), at two sizes (a
quarter and the whole of --size-mb), snapshots each, then runs `extract SNAPSHOT -o yaml`
(stdout to a file) and `inspect SNAPSHOT --json` as child processes and reports wall time and
peak RSS (getrusage of that child) against the file size, and the large/small ratios.

    python bench/bench_extract.py --size-mb 1024
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import load, measure

from k3s_backup.formats.protowire import encode_bytes
from k3s_backup.lab.etcd import EtcdServer

NAMESPACES = ("default", "web", "db", "monitoring")


def _object(kind: str, name: str, namespace: str, data: dict[str, bytes]) -> bytes:
    meta = encode_bytes(1, name.encode()) + encode_bytes(3, namespace.encode())
    meta += encode_bytes(5, f"uid-{name}".encode())
    entries = b"".join(
        encode_bytes(2, encode_bytes(1, key.encode()) + encode_bytes(2, value))
        for key, value in data.items()
    )
    raw = encode_bytes(1, meta) + entries
    type_meta = encode_bytes(1, b"v1") + encode_bytes(2, kind.encode())
    return b"k8s\x00" + encode_bytes(1, type_meta) + encode_bytes(2, raw)


def _entry(rng: random.Random, index: int) -> tuple[bytes, bytes]:
    namespace = NAMESPACES[index % len(NAMESPACES)]
    size = rng.choice((600, 1200, 2500, 4000, 16000))
    if index % 3:
        text = base64.b64encode(rng.randbytes(size * 3 // 4))  # incompressible, valid UTF-8
        key = f"/registry/configmaps/{namespace}/cm-{index:08}"
        return key.encode(), _object("ConfigMap", f"cm-{index:08}", namespace, {"data": text})
    key = f"/registry/secrets/{namespace}/secret-{index:08}"
    secret = _object("Secret", f"secret-{index:08}", namespace, {"key": rng.randbytes(size)})
    return key.encode(), secret


def run_once(root: Path, size_mb: int) -> tuple[int, int, list[tuple[str, float, int]]]:
    """(objects, file size, [(command, seconds, peak RSS)]) for a snapshot of `size_mb`."""
    snapshot = root / f"bench-{size_mb}.db"
    count = snapshot.with_suffix(".objects")  # a --workdir keeps both: later runs reuse them
    if not count.exists():
        with EtcdServer(root / f"etcd-{size_mb}") as etcd:
            objects = load(etcd.endpoint, size_mb, _entry, 19)
            etcd.snapshot_save(snapshot)
        shutil.rmtree(root / f"etcd-{size_mb}", ignore_errors=True)
        count.write_text(f"{objects}\n")
    objects = int(count.read_text())
    cli = [sys.executable, "-c", "from k3s_backup.cli import main; raise SystemExit(main())"]
    seconds, rss, out = measure([*cli, "extract", str(snapshot)])
    if out.count(b"\n---\n") + 1 != objects:
        raise SystemExit(f"extract wrote {out.count(b'---')} documents, expected {objects}")
    runs = [("extract", seconds, rss)]
    seconds, rss, out = measure([*cli, "inspect", str(snapshot), "--json"])
    if json.loads(out)["objects"] != objects:
        raise SystemExit(f"inspect counted {json.loads(out)['objects']} objects, not {objects}")
    runs.append(("inspect", seconds, rss))
    return objects, snapshot.stat().st_size, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256, help="MiB of values, larger run")
    parser.add_argument(
        "--workdir", type=Path, help="keep the snapshots here (a later run reuses them)"
    )
    args = parser.parse_args()
    mib = 1 << 20
    results = []
    with tempfile.TemporaryDirectory() as temp:
        root = args.workdir or Path(temp)
        root.mkdir(parents=True, exist_ok=True)
        for size_mb in (max(args.size_mb // 4, 1), args.size_mb):
            started = time.monotonic()
            objects, size, runs = run_once(root, size_mb)
            results.append((size, {name: rss for name, _seconds, rss in runs}))
            for name, seconds, rss in runs:
                print(
                    f"snapshot {size / mib:7.0f} MiB  {objects:7d} objects  {name} {seconds:6.1f} s"
                    f"  peak RSS {rss / mib:6.1f} MiB ({rss / size:.2f}x the file)"
                )
            print(f"  ({time.monotonic() - started:.0f} s with loading)")
    (small_size, small), (large_size, large) = results
    ratios = {f"{name}_rss_ratio": round(large[name] / small[name], 2) for name in small}
    print(json.dumps({"size_ratio": round(large_size / small_size, 2), **ratios}))


if __name__ == "__main__":
    main()
