"""Shared by the fault-injection tests: what a user relies on after a fault, checked on the real
files; a run as a real process; its log file as a FIFO that lets it past one line at a time."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from k3s_backup.lab.fake_k3s import FakeK3sState
from k3s_backup.lab.k3s_cli import has_trailer
from k3s_backup.lab.lab import Lab
from k3s_backup.plumbing.loopback import stat_fields, wait_for
from tests.support.cli_runner import Result, invoke

OUR_NAME = re.compile(r"k3s-lab-\d{8}-\d{6}-k3s-05-\d+(\.zip)?(\.zst)?(\.age)?")
STORED_SUFFIX = re.compile(r"(\.zst)?(\.age)?$")
TEMP_MARK = ".partial-"
WAIT = 60.0  # seconds before a wait for the process under test gives up


class Clock:
    """Local time advancing a minute per call, starting after the real now (so a run named by
    the real clock and one named by this clock never share a name prefix)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now().astimezone().replace(microsecond=0)
        self.current += timedelta(minutes=5)

    def __call__(self) -> datetime:
        self.current += timedelta(minutes=1)
        return self.current


class Nightly:
    """Local time advancing a day per call: runs nights apart."""

    def __init__(self) -> None:
        self.current = datetime(2026, 11, 23, 2, 0, 0).astimezone()

    def __call__(self) -> datetime:
        self.current += timedelta(days=1)
        return self.current


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str) -> Iterator[None]:
    """A small disk mounted on `directory` (root only; the test is skipped otherwise)."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs as a small disk needs root")
    directory.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def ours(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if OUR_NAME.fullmatch(p.name) and p.is_file())


def snapshots(directory: Path) -> list[str]:
    """The local snapshot names the stored copies in `directory` decode to."""
    return sorted(STORED_SUFFIX.sub("", name, count=1) for name in ours(directory))


def temporaries(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if TEMP_MARK in p.name)


def zstd_decode(path: Path) -> bytes:
    """With the standard `zstd` tool, as an operator would: it checks the frame's checksum."""
    return subprocess.run(["zstd", "-d", "-c", str(path)], capture_output=True, check=True).stdout


def assert_final_names_whole(lab: Lab) -> None:
    """Every copy under a final name on the backup host decodes whole to a snapshot whose
    SHA-256 trailer holds, and every manifest there is complete JSON matching its copy."""
    for name in ours(lab.remote_dir):
        plain = lab.root / "decoded.db"
        plain.write_bytes(zstd_decode(lab.remote_dir / name))
        assert has_trailer(plain), f"{name} under its final name is not a whole snapshot"
        manifest = lab.remote_dir / f"{name}.json"
        if manifest.exists():
            assert (
                json.loads(manifest.read_text())["size"] == (lab.remote_dir / name).stat().st_size
            )


def set_state(lab: Lab, **changes: object) -> None:
    state = FakeK3sState.load(lab.state_file)
    for key, value in changes.items():
        setattr(state, key, value)
    state.save(lab.state_file)


def cli(lab: Lab, config: Path, clock: Callable[[], datetime], *args: str) -> Result:
    return invoke(["--config", str(config), *args], environ=lab.env(), now=clock)


def spawn_run(lab: Lab, config: Path) -> subprocess.Popen[bytes]:
    """`k3s-backup run` as the console script a schedule starts, in its own session."""
    return spawn_cli(lab, config, "run")


def spawn_cli(
    lab: Lab, config: Path, *args: str, stdin: int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """`k3s-backup --config CONFIG ARGS...` as the console script, in its own session (so a
    test can signal its process group, as a terminal's Ctrl-C does)."""
    script = Path(sys.executable).with_name("k3s-backup")
    command = [str(script)] if script.exists() else [sys.executable, "-c", _MAIN]
    return subprocess.Popen(
        [*command, "--config", str(config), *args],
        env=lab.env(),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


_MAIN = "import sys; from k3s_backup.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass(frozen=True)
class _Process:
    pid: int
    parent: int
    session: int


def _processes() -> list[_Process]:
    """Every process (one that exits while /proc is read is left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                _state, parent, _group, session = stat_fields(int(entry.name))[:4]
                found.append(_Process(int(entry.name), int(parent), int(session)))
    return found


def _session_members(sid: int) -> list[int]:
    return [process.pid for process in _processes() if process.session == sid]


def _descendants(pid: int) -> list[int]:
    processes = _processes()
    found: list[int] = []
    frontier = {pid}
    while frontier:
        frontier = {process.pid for process in processes if process.parent in frontier}
        found += frontier
    return found


def _wait_gone(members: Callable[[], list[int]], what: str) -> None:
    """Poll for an exit we cannot wait() on (not our children); kill what is left at WAIT."""
    try:
        wait_for(lambda: not members(), WAIT, what, interval=0.05)
    except TimeoutError:
        for pid in members():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"{what} did not finish") from None


def kill_run(proc: subprocess.Popen[bytes]) -> None:
    """`kill -9` of the run process alone (as an OOM kill or `kill -9 PID` would), then wait
    for what it had started (the k3s CLI, etcdctl) to finish on its own, as it would."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=WAIT)
    _wait_gone(lambda: _session_members(proc.pid), "children of the killed run")


def wait_for_backup_host(lab: Lab) -> None:
    """Until the backup host has served every request a dead run had sent: its sshd session
    (SFTP is served in-process) may still be removing a file after the run is gone."""
    _wait_gone(lambda: _descendants(lab.sshd.pid), "the dead run's sshd session")


class LogGate:
    """The run's log file as a FIFO. The run opens its log for every line, and that open blocks
    while no reader has the FIFO open: `read_until` reads lines until one holds a marker, then
    closes its end, so the run stops at its next log line. A test acts (kills) in between.

    Only a marker followed by real work (a subprocess, a network round trip) gives a sure
    window: the run must not reach its next line in the instant before the reader closes."""

    def __init__(self, path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
        os.mkfifo(path, 0o600)
        self.path = path
        self._procs = procs
        self.lines: list[str] = []
        self._drainer: threading.Thread | None = None

    def _alive(self) -> bool:
        return bool(self._procs) and self._procs[0].poll() is None

    def _read(self, marker: str | None) -> None:
        """Read lines until one contains `marker` (None: until the run exits)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # no writer needed to open
        deadline = time.monotonic() + WAIT
        pending = b""
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while time.monotonic() < deadline:
                if not poller.poll(50):
                    if not self._alive():
                        return
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:  # poll saw no writer (HUP), one opened before the read
                    continue
                if not chunk:  # between two lines the FIFO reads as closed: poll again soon
                    if not self._alive():
                        return
                    time.sleep(0.005)
                pending += chunk
                *complete, rest = pending.split(b"\n")
                pending = rest
                for raw in complete:
                    line = raw.decode().split("] ", 1)[-1]
                    self.lines.append(line)
                    if marker is not None and marker in line:
                        return
            raise TimeoutError(f"no log line with {marker!r} after {self.lines}")
        finally:
            os.close(fd)

    def read_until(self, marker: str) -> str:
        """Let the run write lines until one contains `marker`; that line."""
        self._read(marker)
        if not self.lines or marker not in self.lines[-1]:
            raise AssertionError(f"the run ended before {marker!r}: {self.lines}")
        return self.lines[-1]

    def drain(self) -> None:
        """Let the run log freely (in a thread) until it exits."""
        self._drainer = threading.Thread(target=self._read, args=(None,), daemon=True)
        self._drainer.start()

    def close(self) -> None:
        if self._drainer is not None:
            self._drainer.join(WAIT)


@contextlib.contextmanager
def gated_run(
    lab: Lab, config: Path, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], LogGate]]:
    """A real `run` process whose log is a LogGate; killed if the test leaves it running."""
    holder: list[subprocess.Popen[bytes]] = []
    gate = LogGate(log, holder)
    proc = spawn_run(lab, config)
    holder.append(proc)
    try:
        yield proc, gate
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)
        gate.close()
