"""A real HTTP server on loopback that records every request: the far end of pings and
webhooks in tests. It can answer with given statuses first, or hold every answer until
released (a server slower than any timeout)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from k3s_backup.plumbing.loopback import Service

HOLD_LIMIT = 30.0  # a held answer is released at the latest then, should a test forget


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    body: bytes
    content_type: str


class RecordingServer(Service):
    def __init__(self, statuses: Iterable[int] = (), hold: bool = False) -> None:
        self.requests: list[Received] = []
        self._statuses = list(statuses)  # answered in order, then 200
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _record(self, received: Received) -> int:
        with self._lock:
            self.requests.append(received)
            return self._statuses.pop(0) if self._statuses else 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                kind = self.headers.get("Content-Type") or ""
                status = server._record(Received(self.command, self.path, body, kind))
                server.release.wait(HOLD_LIMIT)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test reads `requests`

        return Handler

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
