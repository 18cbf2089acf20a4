"""Peak memory of an S3 upload of a stream, with the S3 target's transfer settings against the
earlier ones (64 MiB parts, boto3's 10 buffered): the copy is encoded while it is uploaded, so
boto3 sees a stream it must buffer part by part.

    .venv/bin/python bench/bench_s3_upload.py [--size-mb 400]

Each setting uploads in its own process (peak RSS is per process) to the test bed's S3 server
(moto) on loopback; its seconds say little about real object storage, its memory does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig

from k3s_backup.lab.s3 import ACCESS_KEY, SECRET_KEY, S3Server
from k3s_backup.targets import s3

BUCKET = "bench-upload"


class RandomStream:
    """`size` bytes of incompressible data, as zstd hands a target: read() in chunks."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(1 << 20)

    def read(self, size: int = -1, /) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        whole, rest = divmod(size, len(self.block))
        return self.block * whole + self.block[:rest]


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def earlier_config() -> TransferConfig:
    return TransferConfig(
        multipart_threshold=64 << 20, multipart_chunksize=64 << 20, max_concurrency=4
    )


def child(setting: str, endpoint: str, credentials: str, size: int) -> None:
    if setting == "earlier":
        s3.transfer_config = earlier_config
    target = s3.S3Target("bench", BUCKET, setting, endpoint, "us-east-1", Path(credentials))
    target.list()  # connected, before the upload: the baseline of this process
    before = peak_rss_mib()
    started = time.monotonic()
    verified = target.put(f"k3s-bench-{setting}", RandomStream(size), None)
    print(json.dumps({
        "before": before, "peak": peak_rss_mib(), "seconds": time.monotonic() - started,
        "size": verified.size,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=400)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        setting, endpoint, credentials, size = args.child
        child(setting, endpoint, credentials, int(size))
        return
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp, S3Server(Path(tmp)) as server:
        boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        ).create_bucket(Bucket=BUCKET)
        credentials = server.write_credentials(Path(tmp) / "credentials")
        results = {}
        for setting in ("earlier", "current"):
            command = [sys.executable, __file__, "--child", setting, server.endpoint_url,
                       str(credentials), str(args.size_mb << 20)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[setting] = json.loads(done.stdout)
    base = results["earlier"]["peak"] - results["earlier"]["before"]
    print(f"S3 upload of a {args.size_mb} MiB stream, peak RSS of the uploading process:")
    header = ("setting", "before", "peak", "growth", "vs earlier", "seconds")
    print("{:<10} {:>8} {:>8} {:>8} {:>10} {:>8}".format(*header))
    for setting, r in results.items():
        growth = r["peak"] - r["before"]
        print(
            f"{setting:<10} {r['before']:>7.0f}M {r['peak']:>7.0f}M {growth:>7.0f}M"
            f" {growth / base:>9.2f}x {r['seconds']:>8.1f}"
        )


if __name__ == "__main__":
    main()
