"""Compression of real etcd snapshots: ratio and speed of each stored form.

Loads a throwaway etcd with Kubernetes-like data (JSON objects, protobuf-like binary values,
Secrets of random bytes, several revisions per key as a real cluster's history), takes a snapshot
with `etcdctl snapshot save`, and encodes it with every compression the targets offer.

    .venv/bin/python bench/bench_compression.py [--objects 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.request
from base64 import b64encode
from pathlib import Path

from k3s_backup.catalogue.storage_form import StoredForm, stored_stream
from k3s_backup.lab.etcd import EtcdServer
from k3s_backup.plumbing.streams import copy_stream


def put_batch(endpoint: str, items: list[tuple[str, bytes]]) -> None:
    """Many puts in one transaction through etcd's JSON gateway (fast, no etcdctl per key)."""
    ops = [
        {"requestPut": {"key": b64encode(k.encode()).decode(), "value": b64encode(v).decode()}}
        for k, v in items
    ]
    request = urllib.request.Request(
        f"{endpoint}/v3/kv/txn", data=json.dumps({"success": ops}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        reply.read()


def kubernetes_like(index: int, revision: int) -> tuple[str, bytes]:
    kind = index % 4
    if kind == 0:
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"cm-{index}",
                "namespace": f"ns-{index % 40}",
                "resourceVersion": str(revision),
                "labels": {"app": f"a{index % 90}"},
            },
            "data": {"config.yaml": "replicas: 3\nimage: registry/app:1.2.3\n" * 8},
        }
        return f"/registry/configmaps/ns-{index % 40}/cm-{index}", json.dumps(obj).encode()
    if kind == 1:  # a Secret: incompressible payload
        return f"/registry/secrets/ns-{index % 40}/s-{index}", b"k8s\x00" + os.urandom(600)
    if kind == 2:
        value = b"k8s\x00\n\x0f\n\x02v1\x12\x03Pod" + (b"spec-container-image-env" * 40)
        return f"/registry/pods/ns-{index % 40}/pod-{index}", value
    return f"/registry/events/ns-{index % 40}/ev-{index}-{revision}", (b"event " * 60)


def build_snapshot(workdir: Path, objects: int) -> Path:
    with EtcdServer(workdir / "etcd") as etcd:
        for revision in range(3):  # history: each object written three times
            for start in range(0, objects, 100):
                put_batch(
                    etcd.endpoint,
                    [kubernetes_like(i, revision) for i in range(start, min(start + 100, objects))],
                )
        return etcd.snapshot_save(workdir / "snapshot.db")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        snapshot = build_snapshot(workdir, args.objects)
        size = snapshot.stat().st_size
        print(f"snapshot: {size / 2**20:.1f} MiB ({args.objects} objects x 3 revisions)")
        print(f"{'form':<10} {'stored MiB':>10} {'ratio':>6} {'seconds':>8} {'MiB/s':>7}")
        forms = [
            ("none", StoredForm()),
            ("zstd-1", StoredForm("zstd", 1)),
            ("zstd-3", StoredForm("zstd", 3)),
            ("zstd-9", StoredForm("zstd", 9)),
            ("zstd-19", StoredForm("zstd", 19)),
            ("zip", StoredForm("zip")),
        ]
        for label, form in forms:
            started = time.perf_counter()
            with (
                snapshot.open("rb") as plain,
                stored_stream(plain, size, form, "", snapshot.name) as stream,
                (workdir / label).open("wb") as out,
            ):
                # as a target would: read to the end, written out
                stored_size = copy_stream(stream, out)
            seconds = time.perf_counter() - started
            print(
                f"{label:<10} {stored_size / 2**20:>10.1f} {size / stored_size:>6.2f}"
                f" {seconds:>8.2f} {size / 2**20 / max(seconds, 1e-9):>7.0f}"
            )


if __name__ == "__main__":
    main()
