"""The wire format between a node and `k3s-backup serve` on the backup host (docs/protocol.md).

Both sides import this module, so it stays standard library only (the service starts per
connection, and quickly). A message is a frame: a 4-byte big-endian length, then that many
bytes. A header frame holds one JSON object; a data frame holds raw bytes of a copy, and a
zero-length data frame ends a stream. Every read is bounded by the caps below before any byte
of it is read, so a peer cannot make the other side allocate what it announces.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Protocol

VERSION = 1
SERVICE = "k3s-backup"
MAX_REQUEST = 64 << 10  # a request header: a name and a few numbers
MAX_REPLY = 32 << 20  # a reply header: a listing of ~100 000 names at most
MAX_DATA_FRAME = 1 << 20  # one data frame of a PUT or GET
MAX_NAME = 255  # NAME_MAX: longer is no file name on the backup host
_LENGTH = struct.Struct(">I")

# What a request may ask for; the server answers every other `op` with "unknown-op".
OPS = ("list", "stat", "put", "get", "sha256", "delete")
# The server's modes, from its forced command: what the node's key may do there.
APPEND_ONLY = "append-only"  # list, stat, put, get, sha256; never delete (rotation on the host)
PRUNE = "prune"  # also delete, but only what the host's own retention would remove
READ_ONLY = "read-only"  # list, stat, get, sha256: a replacement node restoring
MODES = (APPEND_ONLY, PRUNE, READ_ONLY)


class Reader(Protocol):
    def read(self, size: int, /) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> object: ...


class ProtocolError(Exception):
    """The peer sent what the protocol does not allow, or the stream ended mid-message: the
    connection cannot be trusted to stay in step and is closed."""


def _read_exact(stream: Reader, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise ProtocolError(f"the stream ended {size - len(data)} bytes into a frame")
        data += chunk
    return bytes(data)


def read_frame(stream: Reader, cap: int) -> bytes | None:
    """One frame's bytes; None at a clean end of stream (before a frame's first byte)."""
    head = stream.read(_LENGTH.size)
    if not head:
        return None
    if len(head) < _LENGTH.size:
        head += _read_exact(stream, _LENGTH.size - len(head))
    (length,) = _LENGTH.unpack(head)
    if length > cap:
        raise ProtocolError(f"a frame of {length} bytes announced, at most {cap} allowed")
    return _read_exact(stream, length)


def write_frame(stream: Writer, data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode()


def decode(data: bytes) -> dict[str, Any]:
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ProtocolError("a header frame that is not JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("a header frame that is not a JSON object")
    return message


def read_header(stream: Reader, cap: int) -> dict[str, Any] | None:
    data = read_frame(stream, cap)
    return None if data is None else decode(data)


def write_header(stream: Writer, message: dict[str, Any]) -> None:
    write_frame(stream, encode(message))
    stream.flush()


def hello(mode: str, root: str, free: int) -> dict[str, Any]:
    """What the server says first: who it is, the version it speaks, what this key may do,
    and the bytes free in its directory (for setup and doctor)."""
    return {
        "service": SERVICE,
        "version": VERSION,
        "mode": mode,
        "root": root,
        "max_request": MAX_REQUEST,
        "max_data_frame": MAX_DATA_FRAME,
        "free": free,
    }


def error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": code, "message": message}


def integer(message: dict[str, Any], key: str, default: int | None = None) -> int:
    """A non-negative integer field (bool is no integer here), else ProtocolError."""
    value = message.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"{key!r} must be a non-negative integer")
    return value
