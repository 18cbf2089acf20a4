"""Streaming helpers shared by every layer: nothing is ever read whole into memory."""

from __future__ import annotations

import hashlib
from typing import Protocol

CHUNK_SIZE = 1 << 20


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


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
