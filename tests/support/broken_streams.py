"""Streams that fail the way disks do, for what must happen when a source breaks half-way."""

from __future__ import annotations


class FailingSource:
    """`data` whose reads fail (EIO, as from a dying disk) once `good` bytes were read."""

    def __init__(self, data: bytes, good: int) -> None:
        self.data, self.good, self.offset = data, good, 0

    def read(self, size: int = -1, /) -> bytes:
        end = self.good if size < 0 else min(self.offset + size, self.good)
        if self.offset >= self.good or (size < 0 and self.good < len(self.data)):
            raise OSError(5, "Input/output error")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk
