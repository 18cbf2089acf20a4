"""A stand-in (`k3s`, `systemctl`) that stops at a named point until the test lets it go on: a
test acts on the command under test (sends it a signal) at a moment it knows, not after a sleep.

The stand-in writes `<point>.reached` (its PID) and blocks opening the FIFO `<point>.release`
for reading; the test opens that FIFO for writing and closes it, and the stand-in goes on. Each
point holds once (while its `.reached` file exists).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

from k3s_backup.plumbing.loopback import pid_alive, wait_for

WAIT = 60.0


def hold_here(hold_at: str | None, hold_dir: Path | None, point: str) -> None:
    """Called by a stand-in at `point`: block there if the state asks to (once)."""
    if hold_at != point or hold_dir is None:
        return
    marker = hold_dir / f"{point}.reached"
    if marker.exists():
        return
    temp = marker.with_name(f".{marker.name}.tmp")
    temp.write_text(f"{os.getpid()}\n")
    temp.replace(marker)  # whole or absent: the test reads the PID from it
    with open(hold_dir / f"{point}.release", "rb") as fifo:  # blocks until the test writes
        fifo.read()


class Hold:
    """The test's side of one point. `arm` before starting the command under test."""

    def __init__(self, directory: Path, point: str) -> None:
        self.directory = directory
        self.point = point
        self.marker = directory / f"{point}.reached"
        self.fifo = directory / f"{point}.release"
        self.pid: int | None = None

    def arm(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.marker.unlink(missing_ok=True)
        if not self.fifo.exists():
            os.mkfifo(self.fifo, 0o600)

    def wait_reached(self, proc: subprocess.Popen[bytes]) -> int:
        """The stand-in's PID once it holds at the point; AssertionError if `proc` ended first."""
        wait_for(lambda: self.marker.exists() or proc.poll() is not None, WAIT, self.point)
        if not self.marker.exists():
            raise AssertionError(f"the command ended before {self.point!r}")
        self.pid = int(self.marker.read_text())
        return self.pid

    def release(self) -> None:
        """Let the stand-in go on (nothing to do if it was killed while it held)."""
        assert self.pid is not None

        def released() -> bool:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader (yet, or any more)
                    raise
                return not pid_alive(self.pid or 0)
            with contextlib.suppress(OSError):
                os.close(fd)
            return True

        wait_for(released, WAIT, f"the stand-in at {self.point!r} to be let go", 0.01)
