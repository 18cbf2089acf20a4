"""Progress on a terminal: one line, redrawn in place, never wider than the window. Checked on
the line itself, and on the real command's output in a real pseudo-terminal of 80 and 120
columns (pty, TIOCSWINSZ): a line as wide as the window would wrap at every redraw."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from k3s_backup.plumbing.progress import progress_line, shorten

LABEL = "k3s-lab-20261202-030408-k3s-05-1796180169.zst to backup-host"
TOTAL = 227 << 20


@pytest.mark.parametrize("width", [20, 40, 60, 80, 120, 200])
def test_the_line_fits_the_width_and_keeps_its_layout(width):
    lines = [
        progress_line(LABEL, done, TOTAL, 5.0, width, finished=done == TOTAL)
        for done in range(0, TOTAL + 1, TOTAL // 50)
    ]
    assert all(len(line) <= width - 1 for line in lines)
    starts = {line.index("%") for line in lines}
    assert len(starts) == 1  # the percentage does not wander as the figures grow


def test_the_file_name_is_shortened_first():
    line = progress_line(LABEL, TOTAL // 2, TOTAL, 5.0, 80)
    assert " to backup-host " in line and "50%" in line and "MiB/s" in line
    assert "…" in line.split(" to ")[0]  # the name gave way, not the target or the figures
    assert line.startswith("k3s-lab-")
    wide = progress_line(LABEL, TOTAL // 2, TOTAL, 5.0, 200)
    assert wide.startswith(LABEL + " [")  # room: the whole name and a bar


def test_shorten_keeps_both_ends():
    assert shorten("abcdefghij", 5) == "ab…ij"
    assert shorten("abc", 5) == "abc"


def run_in_terminal(command: list[str], columns: int, environ: dict[str, str]) -> str:
    """`command` with stdin, stdout and stderr on a new pseudo-terminal of `columns` x 24."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every process holding the terminal is gone
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, output.decode(errors="replace")
    return output.decode().replace("\r\n", "\n")  # the terminal's ONLCR


def screen_lines(output: str) -> list[list[str]]:
    """Each output line as the segments `\\r` redraws it in."""
    return [line.split("\r") for line in output.split("\n")]


def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("k3s-backup")
    main = "import sys; from k3s_backup.cli import main; sys.exit(main(sys.argv[1:]))"
    return [str(script)] if script.exists() else [sys.executable, "-c", main]


@pytest.mark.parametrize("columns", [80, 120])
def test_run_and_fetch_in_a_real_terminal_draw_one_line_each(lab, tmp_path, columns):
    for index in range(3):  # incompressible: the upload takes several redraws
        lab.etcd.put(f"/registry/secrets/default/big-{index}", os.urandom(1_000_000))
    config = lab.write_config(tmp_path / "c.toml")
    base = [*cli_command(), "--config", str(config)]
    out = run_in_terminal([*base, "run"], columns, lab.env())
    [name] = [p.name for p in lab.snapshot_dir.iterdir()]
    fetched = tmp_path / "fetched.db"
    out += run_in_terminal(
        [*base, "fetch", name, "--out", str(fetched), "--from", "backup-host"], columns, lab.env()
    )
    assert fetched.read_bytes() == (lab.snapshot_dir / name).read_bytes()
    redrawn = [line for line in screen_lines(out) if len(line) > 1]  # the lines `\r` redraws
    bars = [line for line in screen_lines(out) if any("%" in segment for segment in line)]
    assert bars == redrawn and len(bars) == 2, out  # one line per transfer, nothing stale
    assert all(len(segment) <= columns - 1 for line in bars for segment in line), out
    upload, download = bars
    assert "to backup-host" in upload[-1] and "100%" in upload[-1]
    assert "from backup-host" in download[-1] and "100%" in download[-1]
