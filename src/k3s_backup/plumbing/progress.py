"""Progress of uploads and downloads: on a terminal only, one line redrawn in place (`\\r`), as
scp and restic draw it; under cron or with a redirected stderr nothing at all, so logs stay
line-oriented.

The line is fitted to the terminal's width at every redraw (a window resized meanwhile too),
and never reaches its last column: a line as wide as the terminal wraps on some terminals, and
each redraw would then leave a stale line behind. When space runs short, the file name is
shortened first (its middle elided: the cluster prefix and the unix time stay), then the bar
goes, then the sizes; the percentage stays.
"""

from __future__ import annotations

import io
import os
import time
from typing import Self, TextIO

from k3s_backup.environment import Environment
from k3s_backup.plumbing.closable import Closable
from k3s_backup.report import human_size

REDRAW_EVERY = 0.1  # seconds: a redraw per chunk would cost more than the transfer's output
DEFAULT_WIDTH = 80
MIN_NAME = 16  # below this, a file name says nothing: the sizes go first
MAX_BAR = 30
MIN_BAR = 10
ELLIPSIS = "…"


def terminal_width(stream: TextIO, environ: dict[str, str] | None = None) -> int:
    """Columns of the terminal `stream` writes to; $COLUMNS, else 80, when it cannot say."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        columns = 0
    if columns <= 0:
        try:
            columns = int((environ or {}).get("COLUMNS", ""))
        except ValueError:
            columns = 0
    return columns if columns > 0 else DEFAULT_WIDTH


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` characters, its middle elided."""
    if len(text) <= width:
        return text
    if width <= len(ELLIPSIS):
        return text[:width]
    head = (width - len(ELLIPSIS) + 1) // 2
    tail = width - len(ELLIPSIS) - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(
    label: str, done: int, total: int, elapsed: float, width: int, finished: bool = False
) -> str:
    """One line of at most `width - 1` characters: label, bar, percentage, bytes done, rate,
    time left (or taken, once finished)."""
    room = max(width - 1, 1)
    fraction = min(done / total, 1.0) if total > 0 else 1.0
    percent = f"{int(fraction * 100):3d}%"
    rate = done / elapsed if elapsed > 0 else 0.0
    if finished:
        timing = f"in {_clock(elapsed)}"
    elif rate > 0 and total > done:
        timing = f"ETA {_clock((total - done) / rate)}"
    else:
        timing = "ETA --:--"
    # Fixed widths: the layout stays put while the figures grow.
    sizes = f"{human_size(done):>9} {human_size(int(rate)):>9}/s {timing:<11}"
    right = f" {percent} {sizes}"
    name, _, rest = label.partition(" ")
    if room - len(right) < min(MIN_NAME, len(name)) + (len(rest) + 1 if rest else 0):
        right = f" {percent}"  # no room for the sizes beside a readable name
    space = max(room - len(right), 0)
    left = _fit_label(label, space)
    bar_width = min(MAX_BAR, space - len(left) - 3)
    if bar_width >= MIN_BAR:
        filled = int(fraction * bar_width)
        left += " [" + "#" * filled + "-" * (bar_width - filled) + "]"
    return (left + right)[:room]


def _fit_label(label: str, space: int) -> str:
    """`label` ("<file> to <target>") in `space`: the file name shortened first."""
    if len(label) <= space:
        return label
    name, _, rest = label.partition(" ")
    name_room = space - len(rest) - 1
    if rest and name_room >= min(MIN_NAME, len(name)):
        return f"{shorten(name, name_room)} {rest}"
    return shorten(label, space)


class TransferBar(Closable):
    """`advance(n)` after every chunk; a no-op unless stderr is a terminal."""

    def __init__(self, env: Environment, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._out = env.stderr if env.stderr.isatty() else None
        self._environ = dict(env.environ)
        self._started = time.monotonic()
        self._drawn_at = float("-inf")
        self._drawn = False

    def _draw(self, finished: bool = False) -> None:
        assert self._out is not None
        width = terminal_width(self._out, self._environ)
        elapsed = time.monotonic() - self._started
        line = progress_line(self.label, self.done, self.total, elapsed, width, finished)
        self._out.write("\r" + line.ljust(width - 1))  # spaces cover a longer previous line
        self._out.flush()
        self._drawn = True

    def advance(self, size: int) -> None:
        if self._out is None:
            return
        self.done += size
        now = time.monotonic()
        if now - self._drawn_at >= REDRAW_EVERY:
            self._drawn_at = now
            self._draw()

    def __enter__(self) -> Self:
        if self._out is not None:
            self._draw()
        return self

    def finish(self, ok: bool) -> None:
        """The bar drawn full only when the transfer completed; then a newline."""
        if self._out is None:
            return
        if ok:
            self._draw(finished=True)
        if self._drawn:
            self._out.write("\n")  # what follows starts on its own line
            self._out.flush()
