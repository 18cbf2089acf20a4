"""Dead man's switch pings in the healthchecks.io convention: `<url>/start` when a run begins,
`<url>` when it succeeded, `<url>/fail` when it did not, the log's tail as the body. The
service alerts when a ping is late, so a backup that silently stopped is noticed too."""

from __future__ import annotations

from k3s_backup.monitoring.http import post

TAIL_LINES = 100
TAIL_BYTES = 10_000  # healthchecks.io keeps the first 100 kB of a body; this is plenty


def log_tail(lines: list[str]) -> bytes:
    text = "".join(f"{line}\n" for line in lines[-TAIL_LINES:]).encode()
    return text[-TAIL_BYTES:]


class Pinger:
    def __init__(self, url: str, timeout: float, retries: int) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries

    def _send(self, suffix: str, body: bytes) -> None:
        post(self.url + suffix, body, "text/plain; charset=utf-8", self.timeout, self.retries)

    def start(self) -> None:
        self._send("/start", b"")

    def success(self, lines: list[str]) -> None:
        self._send("", log_tail(lines))

    def fail(self, lines: list[str]) -> None:
        self._send("/fail", log_tail(lines))
