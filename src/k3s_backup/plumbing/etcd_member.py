"""One throwaway etcd member on free 127.0.0.1 ports, in its own data dir, stopped by its PID:
what `drill` restores a copy into, and what the test lab and the demo run as the cluster's etcd.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from k3s_backup.plumbing.deadline import shielded
from k3s_backup.plumbing.loopback import free_ports, log_tail, spawn_logged, stop_child

STOP_TIMEOUT = 10.0
PORT_TAKEN = "address already in use"  # what etcd logs when another process took a port


class EtcdMember:
    """`etcd` as a single-member cluster; `start_and_wait()` launches it, waits for `ready()`."""

    def __init__(
        self,
        etcd: str,
        data_dir: Path,
        log_path: Path,
        name: str = "default",
        environ: Mapping[str, str] | None = None,
        ports: tuple[int, int] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.etcd = etcd
        self.data_dir = data_dir
        self.log_path = log_path
        self.name = name
        self.environ = environ
        self.extra_args = list(extra_args)
        self.ports_chosen = ports is not None
        self.client_port, self.peer_port = ports or tuple(free_ports(2))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def command(self) -> list[str]:
        return [
            self.etcd,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.endpoint}",
            f"--advertise-client-urls={self.endpoint}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.name}={self.peer_url}",
            *self.extra_args,
        ]

    def launch(self) -> None:
        """Start the process without waiting for it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.proc = spawn_logged(self.command(), self.log_path, self.environ)

    def exited(self) -> int | None:
        """Its exit code if it is not running (never started: -1), else None."""
        return -1 if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_path, lines)

    def start_and_wait(
        self,
        ready: Callable[[], None],
        attempts: int = 3,
        prepare: Callable[[], None] = lambda: None,
    ) -> None:
        """`prepare()` (the data dir), launch, `ready()` (raises if not); with new ports when
        another process took one of ours between picking and binding (ports we picked only)."""
        for attempt in range(attempts):
            prepare()
            self.launch()
            try:
                ready()
                return
            except Exception as exc:
                with shielded():
                    self.stop()
                if PORT_TAKEN not in str(exc) or self.ports_chosen or attempt + 1 == attempts:
                    raise
            except BaseException:  # a deadline or a signal while it starts: never leave it
                with shielded():
                    self.stop()
                raise
            self.client_port, self.peer_port = free_ports(2)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_child(proc, STOP_TIMEOUT)
