"""Uploads and downloads to the backup host: `k3s-backup serve` (append-only, a real account's
forced command, as host-setup makes it) against the guide's root SFTP, same sshd, same run.

Each round puts a new copy (verified where stored: the service hashes while writing, SFTP runs
`sha256sum` there) and gets it back, through the Target each mode uses; interleaved, median.
Needs root (useradd), like the tests of the service.

    .venv/bin/python bench/bench_service.py [--size-mb 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from k3s_backup.config import SshTargetConfig
from k3s_backup.lab.lab import Lab
from k3s_backup.targets.base import Target
from k3s_backup.targets.factory import open_target

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.service_host import CLUSTER, service_host  # the real set-up


def name(index: int) -> str:
    return f"{CLUSTER}-20261123-020000-k3s-05-{1795399200 + index}.zst"


def round_trip(target: Target, index: int, data: bytes, digest: str) -> tuple[float, float]:
    start = time.perf_counter()
    target.put(name(index), io.BytesIO(data), digest)
    put = time.perf_counter() - start
    out = io.BytesIO()
    start = time.perf_counter()
    target.get(name(index), out, len(data))
    got = time.perf_counter() - start
    assert hashlib.sha256(out.getvalue()).hexdigest() == digest
    return put, got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(1 << 20) * args.size_mb  # compression is not what is measured here
    digest = hashlib.sha256(data).hexdigest()
    times: dict[str, list[tuple[float, float]]] = {"sftp (root)": [], "service": []}
    with (
        tempfile.TemporaryDirectory() as work,
        Lab(Path(work) / "lab") as lab,
        service_host(lab) as host,
    ):
        host.host_setup("append-only")
        configs = {
            "sftp (root)": SshTargetConfig.model_validate(lab.ssh_target()),
            "service": host.config("append-only"),
        }
        targets = {label: open_target(c, CLUSTER) for label, c in configs.items()}
        try:
            for index in range(args.rounds):
                for label, target in targets.items():
                    times[label].append(round_trip(target, index, data, digest))
        finally:
            for target in targets.values():
                target.close()
    print(f"{args.size_mb} MiB incompressible, median of {args.rounds}:")
    for label, rounds in times.items():
        put = statistics.median(p for p, _ in rounds)
        got = statistics.median(g for _, g in rounds)
        print(
            f"  {label:12} put+verify {put:6.2f} s ({args.size_mb / put:5.0f} MiB/s)"
            f"   get {got:6.2f} s ({args.size_mb / got:5.0f} MiB/s)"
        )


if __name__ == "__main__":
    main()
