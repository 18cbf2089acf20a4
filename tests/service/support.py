"""The service in this process, on a real directory, spoken to over two real pipes (what sshd
gives it is the same: a byte stream each way)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from k3s_backup.policy.retention import GfsRules
from k3s_backup.service.client import Client
from k3s_backup.service.server import Settings, run

CLUSTER = "k3s-lab"
KEEP_ONE = GfsRules(last=1)
OLD = "k3s-lab-20261122-020000-k3s-05-1795312800"
NEW = "k3s-lab-20261123-020000-k3s-05-1795399200"
OTHER_NODE = "k3s-lab-20261121-020000-k3s-06-1795226400"


@dataclass
class Served:
    client: Client
    node_rx: BinaryIO
    node_tx: BinaryIO
    codes: list[int] = field(default_factory=list)

    def close(self) -> None:
        """The node's end of the stream: the service sees it and returns."""
        with contextlib.suppress(BrokenPipeError):
            self.node_tx.close()


@contextmanager
def served(
    root: Path,
    mode: str = "append-only",
    rules: GfsRules = KEEP_ONE,
    max_size: int = 1 << 30,
    now: Callable[[], float] = time.time,
    handshake: bool = True,
    **limits: int,  # Settings' protect_days, max_per_day
) -> Iterator[Served]:
    to_server, from_node = os.pipe()
    to_node, from_server = os.pipe()
    # the four ends outlive this function's frame: closed by the service and the teardown
    rx, tx = open(to_server, "rb"), open(from_server, "wb")  # noqa: SIM115
    settings = Settings(root, CLUSTER, mode, rules, max_size, now, **limits)
    node_rx, node_tx = open(to_node, "rb"), open(from_node, "wb")  # noqa: SIM115
    done = Served(Client(node_rx, node_tx), node_rx, node_tx)

    def service() -> None:  # as the process would: its streams close when it ends
        try:
            done.codes.append(run(settings, rx, tx))
        finally:
            for stream in (tx, rx):
                with contextlib.suppress(BrokenPipeError):
                    stream.close()

    thread = threading.Thread(target=service)
    thread.start()
    try:
        if handshake:
            done.client.handshake()
        yield done
    finally:
        done.close()
        node_rx.close()  # a reply still being written fails instead of blocking the service
        thread.join(timeout=30)
