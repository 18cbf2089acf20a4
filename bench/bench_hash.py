"""SHA-256 of a copy on the backup host: the service's hashlib against Debian's `sha256sum`.

The SFTP target asks the backup host to run `sha256sum` on each copy; `k3s-backup serve` hashes
with Python's hashlib (OpenSSL) while it writes, and again for `verify`. Both are timed here on
the same file, from process start to digest (the service's reading loop as `verify` runs it, in
a fresh interpreter on the system's Python, as sshd would start it), warm page cache, median of
N rounds, in one run so the ratio compares like with like.

    .venv/bin/python bench/bench_hash.py [--size-mb 1024] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import k3s_backup

SOURCE = Path(k3s_backup.__file__).parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
SERVICE_HASH = (
    "import sys; from pathlib import Path; from k3s_backup.service.store import Store; "
    "path = Path(sys.argv[1]); print(Store(path.parent).sha256(path.name))"
)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return time.perf_counter() - start, done.stdout.split()[0]


def make_file(path: Path, size_mb: int) -> str:
    """Half random, half repetitive bytes (etcd snapshots are both); returns its SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for index in range(size_mb):
            block = os.urandom(1 << 19) + bytes([index % 251]) * (1 << 19)
            out.write(block)
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(SOURCE))
    with tempfile.TemporaryDirectory(prefix="bench-hash-") as work:
        path = Path(work) / "copy"
        expected = make_file(path, args.size_mb)
        contenders = {
            "sha256sum (coreutils)": ["sha256sum", "--", str(path)],
            "k3s-backup serve (hashlib)": [PYTHON, "-s", "-c", SERVICE_HASH, str(path)],
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):  # interleaved: a slower moment hits both
            for name, command in contenders.items():
                seconds, digest = timed(command, env)
                assert digest == expected, f"{name} disagrees"
                times[name].append(seconds)
    print(f"{args.size_mb} MiB, warm cache, median of {args.rounds} (min-max):")
    base = statistics.median(times["sha256sum (coreutils)"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:28} {median:6.2f} s ({min(values):.2f}-{max(values):.2f})"
            f"  {args.size_mb / median:7.0f} MiB/s  {base / median:4.1f}x sha256sum's speed"
        )


if __name__ == "__main__":
    main()
