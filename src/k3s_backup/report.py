"""What a command tells the operator: stdout/stderr and `[YYYY-mm-dd HH:MM:SS] message` lines
appended to the log file. A log that cannot be written warns once and never fails the backup."""

from __future__ import annotations

from pathlib import Path

from k3s_backup.environment import Environment

LOG_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


class Reporter:
    def __init__(self, env: Environment, log_file: Path | None) -> None:
        self.env = env
        self.log_file = log_file
        self._log_failed = False

    def _log(self, message: str) -> None:
        if self.log_file is None or self._log_failed:
            return
        stamp = self.env.now().strftime(LOG_TIME_FORMAT)
        lines = "".join(f"[{stamp}] {line}\n" for line in message.splitlines())
        try:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("a", encoding="utf-8") as log:
                log.write(lines)
        except OSError as exc:
            self._log_failed = True
            self.env.stderr.write(f"warning: cannot write log {self.log_file}: {exc.strerror}\n")

    def info(self, message: str) -> None:
        self.env.stdout.write(message + "\n")
        self._log(message)

    def warn(self, message: str) -> None:
        self.env.stderr.write(f"warning: {message}\n")
        self._log(f"WARNING: {message}")

    def error(self, message: str) -> None:
        self.env.stderr.write(f"error: {message}\n")
        self._log(f"ERROR: {message}")
