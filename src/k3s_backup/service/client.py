"""The node's side of the protocol over any pair of byte streams (an SSH exec channel in
targets/service.py, a pipe in tests). Every reply is read within the caps of protocol.py, and
what the server says about a copy is checked, never taken (sizes, digests, frame counts).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from k3s_backup.service import protocol
from k3s_backup.service.protocol import ProtocolError


class ServiceRefused(Exception):
    """The server's error reply: `code` is the protocol's, the message its words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Client:
    def __init__(self, rx: protocol.Reader, tx: protocol.Writer) -> None:
        self.rx = rx
        self.tx = tx
        self.hello: dict[str, Any] = {}

    def handshake(self) -> dict[str, Any]:
        """Read the server's hello, answer with our version; ProtocolError if no service of
        ours answered (a shell, a plain SFTP account), ServiceRefused if it refused to start."""
        try:
            hello = protocol.read_header(self.rx, protocol.MAX_REPLY)
        except ProtocolError:
            raise ProtocolError(
                "the backup host did not answer as the k3s-backup service"
            ) from None
        if hello is None:
            raise ProtocolError("the backup host closed the connection before the service spoke")
        if hello.get("ok") is False:
            raise ServiceRefused(str(hello.get("error")), str(hello.get("message"))[:500])
        if hello.get("service") != protocol.SERVICE:
            raise ProtocolError("the backup host did not answer as the k3s-backup service")
        if hello.get("version") != protocol.VERSION:
            raise ProtocolError(
                f"the backup host's k3s-backup speaks protocol version {hello.get('version')!r},"
                f" this node's {protocol.VERSION}: install the same k3s-backup on both"
            )
        protocol.write_header(self.tx, {"version": protocol.VERSION})
        self.hello = hello
        return hello

    def _reply(self) -> dict[str, Any]:
        reply = protocol.read_header(self.rx, protocol.MAX_REPLY)
        if reply is None:
            raise ProtocolError("the backup host closed the connection mid-request")
        if reply.get("ok") is not True:
            raise ServiceRefused(str(reply.get("error")), str(reply.get("message"))[:500])
        return reply

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        protocol.write_header(self.tx, request)
        return self._reply()

    def list(self) -> list[tuple[str, int]]:
        entries = self.call({"op": "list"}).get("entries")
        if not isinstance(entries, list):
            raise ProtocolError("a listing that is not a list")
        found = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ProtocolError("a listing entry without a name")
            found.append((entry["name"], protocol.integer(entry, "size")))
        return found

    def stat(self, name: str) -> int | None:
        reply = self.call({"op": "stat", "name": name})
        return protocol.integer(reply, "size") if reply.get("exists") is True else None

    def sha256(self, name: str) -> str:
        digest = self.call({"op": "sha256", "name": name}).get("sha256")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ProtocolError("a SHA-256 that is not 64 hex digits")
        return digest

    def delete(self, name: str) -> None:
        self.call({"op": "delete", "name": name})

    def get(self, name: str, write: Callable[[bytes], object], limit: int) -> int:
        """Stream `name` to `write`; ServiceRefused "too-large" when it holds over `limit`."""
        size = protocol.integer(self.call({"op": "get", "name": name, "limit": limit}), "size")
        if size > limit:
            raise ProtocolError(f"the backup host announced {size} bytes, {limit} asked for")
        received = 0
        while chunk := protocol.read_frame(self.rx, protocol.MAX_DATA_FRAME):
            received += len(chunk)
            if received > size:
                raise ProtocolError(f"the backup host sent more than the {size} bytes announced")
            write(chunk)
        if chunk is None:
            raise ProtocolError("the backup host closed the connection mid-download")
        if received != size:
            raise ProtocolError(
                f"the backup host sent {received} of the {size} bytes of {name} (it changed or"
                " could not be read there)"
            )
        return size

    def put(
        self,
        name: str,
        read: Callable[[int], bytes],
        expected: Callable[[], str],
        size: int | None = None,
    ) -> dict[str, Any]:
        """Upload what `read` gives until it gives b""; the server publishes only bytes that
        hash to `expected()` (asked once the source is drained). What reading the source
        raises aborts the upload (no file left) and is raised again."""
        request: dict[str, Any] = {"op": "put", "name": name}
        if size is not None:
            request["size"] = size
        self.call(request)
        while True:
            try:
                chunk = read(protocol.MAX_DATA_FRAME)
            except BaseException:
                self._abort()
                raise
            if not chunk:
                break
            protocol.write_frame(self.tx, chunk)
        protocol.write_frame(self.tx, b"")
        protocol.write_header(self.tx, {"sha256": expected()})
        return self._reply()

    def _abort(self) -> None:
        protocol.write_frame(self.tx, b"")
        protocol.write_header(self.tx, {"abort": True})
        with contextlib.suppress(ServiceRefused):  # "aborted": as asked
            self._reply()
