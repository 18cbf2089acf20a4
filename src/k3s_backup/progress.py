"""Progress bars for uploads and downloads: on a terminal only (click's bar, with rate and ETA);
under cron or with a redirected stderr nothing at all, so logs stay line-oriented."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from k3s_backup.environment import Environment
from k3s_backup.report import human_size


class TransferBar:
    """`advance(n)` after every chunk; a no-op unless stderr is a terminal."""

    def __init__(self, env: Environment, label: str, total: int) -> None:
        self._bar: Any = None
        self._started = time.monotonic()
        if env.stderr.isatty():
            import click

            self._bar = click.progressbar(
                length=total, label=label, file=env.stderr, item_show_func=self._rate
            )

    def _rate(self, _item: object) -> str:
        elapsed = time.monotonic() - self._started
        done = self._bar.pos if self._bar is not None else 0
        return f"{human_size(int(done / elapsed))}/s" if elapsed > 0 else ""

    def advance(self, size: int) -> None:
        if self._bar is not None:
            self._bar.update(size)

    def __enter__(self) -> TransferBar:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
