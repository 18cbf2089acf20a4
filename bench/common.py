"""What the benchmarks share: a throwaway etcd loaded fast with Kubernetes-like keys, and the
wall time and peak RSS of one command run as a child process.

Loading goes through etcd's v3 JSON gateway, TXN_OPS puts per transaction (etcd's default
--max-txn-ops), IN_FLIGHT transactions at once; each benchmark says what its keys and values are.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

TXN_OPS = 128  # etcd's default --max-txn-ops
IN_FLIGHT = 8
# (rng, index) -> (key, value) of the index-th object; the key depends on the index alone.
Entry = Callable[[random.Random, int], tuple[bytes, bytes]]


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


def _txn(endpoint: str, ops: list[dict[str, Any]]) -> None:
    _post(endpoint, "/v3/kv/txn", {"success": ops})


def _put(key: bytes, value: bytes) -> dict[str, Any]:
    return {"requestPut": {"key": _b64(key), "value": _b64(value)}}


def load(
    endpoint: str,
    size_mb: int,
    entry: Entry,
    seed: int,
    rewrite_every: int = 0,
    delete_every: int = 0,
) -> int:
    """Write about `size_mb` MiB of values; then, for history, every `rewrite_every`-th key
    again with a new value and every `delete_every`-th deleted (0: none). Returns the count
    of keys written."""
    rng = random.Random(seed)
    written = 0
    keys: list[bytes] = []
    batches: list[list[dict[str, Any]]] = []
    while written < size_mb << 20:
        ops = []
        for _ in range(TXN_OPS):
            key, value = entry(rng, len(keys))
            ops.append(_put(key, value))
            keys.append(key)
            written += len(value)
        batches.append(ops)
    later: list[dict[str, Any]] = []
    if rewrite_every:
        later += [_put(keys[i], entry(rng, i)[1]) for i in range(0, len(keys), rewrite_every)]
    if delete_every:
        later += [
            {"requestDeleteRange": {"key": _b64(keys[i])}}
            for i in range(0, len(keys), delete_every)
        ]
    batches += [later[i : i + TXN_OPS] for i in range(0, len(later), TXN_OPS)]
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(lambda ops: _txn(endpoint, ops), batches))
    return len(keys)


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
