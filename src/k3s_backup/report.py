"""What a command tells the operator: stdout/stderr and log file lines, either text
(`[YYYY-mm-dd HH:MM:SS+HH:MM] message`) or, with `--log-format json`, one JSON object per line for
log shippers. A log that cannot be written warns once and never fails the backup."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from k3s_backup.environment import Environment

LEVEL_PREFIXES = {"info": "", "warning": "WARNING: ", "error": "ERROR: "}


def shown_time(value: datetime | int | str | None) -> str:
    """A time as every command shows it to people: local time with its UTC offset, to the
    second (`2026-12-02 03:00:00+01:00`). Takes a datetime (naive: local), a unix time, or the
    ISO 8601 text of a state file or manifest; other text is shown as it is."""
    if value is None:
        return "-"
    if isinstance(value, int):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    return moment.astimezone().isoformat(sep=" ", timespec="seconds")


def plural(count: int, noun: str) -> str:
    """`1 copy`, `2 copies`, `0 snapshots`."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


class Reporter:
    """`lines` keeps this command's text log lines (a ping's body); `echo_info=False` keeps
    stdout free for a JSON document."""

    def __init__(self, env: Environment, log_file: Path | None, echo_info: bool = True) -> None:
        self.env = env
        self.log_file = log_file
        self.echo_info = echo_info
        self.lines: list[str] = []
        self._log_failed = False

    def _format(self, level: str, message: str) -> str:
        now = self.env.now()
        if self.env.log_format == "json":
            entry = {"time": now.isoformat(timespec="seconds"), "level": level, "message": message}
            return json.dumps(entry) + "\n"
        stamp = shown_time(now)
        text = LEVEL_PREFIXES[level] + message
        return "".join(f"[{stamp}] {line}\n" for line in text.splitlines())

    def _log(self, level: str, message: str) -> None:
        self.lines += (LEVEL_PREFIXES[level] + message).splitlines()
        if self.log_file is None or self._log_failed:
            return
        try:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            # 0600 from the start (logrotate's `create 0600` only applies from the first rotation):
            # the log names hosts, paths and errors that are nobody else's business.
            fd = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(fd, "a", encoding="utf-8") as log:
                log.write(self._format(level, message))
        except OSError as exc:
            self._log_failed = True
            self.env.stderr.write(f"warning: cannot write log {self.log_file}: {exc.strerror}\n")

    def info(self, message: str) -> None:
        if self.echo_info:
            self.env.stdout.write(message + "\n")
        self._log("info", message)

    def warn(self, message: str) -> None:
        self.env.stderr.write(f"warning: {message}\n")
        self._log("warning", message)

    def error(self, message: str) -> None:
        self.env.stderr.write(f"error: {message}\n")
        self._log("error", message)
