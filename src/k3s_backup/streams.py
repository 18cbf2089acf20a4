"""Streaming helpers shared by every layer: nothing is ever read whole into memory."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import BinaryIO, Protocol

CHUNK_SIZE = 1 << 20


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class HashingWriter:
    """Writes through to `dest`, hashing (SHA-256) and counting what passes, so what was
    written need not be read again to hash it. Only for sequential writers: zip seeks back."""

    def __init__(self, dest: BinaryIO) -> None:
        self.dest = dest
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.dest.write(data)

    def flush(self) -> None:
        self.dest.flush()


def sha256_stream(stream: Readable) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK_SIZE):
        digest.update(chunk)
    return digest.hexdigest()


def copy_stream(source: Readable, dest: Writable) -> int:
    copied = 0
    while chunk := source.read(CHUNK_SIZE):
        dest.write(chunk)
        copied += len(chunk)
    return copied


class MeteredReader:
    """Passes reads through, reporting each chunk's size (progress bars) and noting when the
    source ran dry: a target's `put` spends the rest of its time verifying and renaming."""

    def __init__(self, source: Readable, on_chunk: Callable[[int], object]) -> None:
        self.source = source
        self.on_chunk = on_chunk
        self.drained_at: float | None = None  # time.monotonic() of the first empty read

    def read(self, size: int = -1, /) -> bytes:
        data = self.source.read(size)
        if data:
            self.on_chunk(len(data))
        elif self.drained_at is None:
            self.drained_at = time.monotonic()
        return data
