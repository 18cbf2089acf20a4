"""Streaming helpers shared by every layer: nothing is ever read whole into memory."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from k3s_backup.errors import BackupError

CHUNK_SIZE = 1 << 20


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class HashingWriter:
    """Writes through to `dest`, hashing (SHA-256) and counting what passes, so what was
    written need not be read again to hash it; `advance` (a progress bar's) is told the size
    of each chunk as it passes. Only for sequential writers: zip seeks back."""

    def __init__(self, dest: BinaryIO, advance: Callable[[int], object] | None = None) -> None:
        self.dest = dest
        self.advance = advance
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        if self.advance is not None:
            self.advance(len(data))
        self.digest.update(data)
        self.size += len(data)
        return self.dest.write(data)

    def flush(self) -> None:
        self.dest.flush()


class HashingReader:
    """Reads through from `source`, counting what passes and, with `hashing`, taking its
    SHA-256: what a target sends is then known exactly, without reading it twice."""

    def __init__(self, source: Readable, hashing: bool = True) -> None:
        self.source = source
        self.size = 0
        self._digest = hashlib.sha256() if hashing else None

    def read(self, size: int = -1, /) -> bytes:
        chunk = self.source.read(size)
        if self._digest is not None:
            self._digest.update(chunk)
        self.size += len(chunk)
        return chunk

    def hexdigest(self) -> str:
        if self._digest is None:
            raise ValueError("this reader was not asked to hash")
        return self._digest.hexdigest()


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


class RefusedInput(BackupError):
    """Foreign bytes refused before they could cost memory or disk: more than a cap allows (a
    file longer than announced, a decompression bomb), or not a regular file (a symlink)."""


def over_limit(what: str, limit: int, why: str) -> RefusedInput:
    return RefusedInput(f"{what} holds more than {limit} bytes ({why}): refusing it")


def copy_capped(source: Readable, dest: Writable, limit: int, what: str, why: str) -> int:
    """Copy `source` to `dest` as long as it holds at most `limit` bytes; RefusedInput naming
    `what` and `why` (where the limit comes from) if it holds more. Never reads more than
    `limit` + 1 bytes, and never writes more than `limit`."""
    copied = 0
    while chunk := source.read(min(CHUNK_SIZE, limit + 1 - copied)):
        copied += len(chunk)
        if copied > limit:
            raise over_limit(what, limit, why)
        dest.write(chunk)
    return copied


class CappedWriter:
    """For writers that push (age's decryptor): RefusedInput on the write that would pass
    `limit`, and `refused` remembers it in case the pusher wraps the exception in its own."""

    def __init__(self, dest: Writable, limit: int, what: str, why: str) -> None:
        self.dest = dest
        self.limit = limit
        self.what = what
        self.why = why
        self.size = 0
        self.refused: RefusedInput | None = None

    def write(self, data: bytes, /) -> int:
        if self.size + len(data) > self.limit:
            self.refused = over_limit(self.what, self.limit, self.why)
            raise self.refused
        self.size += len(data)
        self.dest.write(data)
        return len(data)

    def flush(self) -> None:
        flush = getattr(self.dest, "flush", None)
        if flush is not None:
            flush()


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file, never through a symlink (O_NOFOLLOW):
    a file of ours swapped for a link to /dev/zero or to another file is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedInput(f"{path} is a symbolic link: refusing to follow it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RefusedInput(f"{path} is not a regular file: refusing to read it")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: Path, limit: int, what: str) -> bytes:
    """A small file of ours (a manifest, a bundle) whole, at most `limit` bytes."""
    buffer = bytearray()
    with open_regular(path) as stream:
        copy_capped(stream, _Appender(buffer), limit, what, "the most such a file may hold")
    return bytes(buffer)


class _Appender:
    def __init__(self, buffer: bytearray) -> None:
        self.buffer = buffer

    def write(self, data: bytes, /) -> int:
        self.buffer += data
        return len(data)


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


PIPE_SIZE = 1 << 20  # Linux's default maximum for an unprivileged F_SETPIPE_SZ
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class _ProducedReader:
    """The read end of a producer's pipe. The end of the data is only the end once the
    producer has finished without error: a producer that failed half-way must never look like
    a short but complete stream, or a truncated copy would verify against itself."""

    def __init__(self, pipe: BinaryIO, thread: threading.Thread, failure: list[BaseException]):
        self.pipe = pipe
        self.thread = thread
        self.failure = failure

    def read(self, size: int = -1, /) -> bytes:
        data = self.pipe.read(size)
        if not data:
            self.thread.join()
            if self.failure:
                raise self.failure[0]
        return data


@contextlib.contextmanager
def produced(produce: Callable[[BinaryIO], object]) -> Iterator[Readable]:
    """What `produce` writes, as a stream to read, for writers that cannot be pulled from
    (age's encryptor, zipfile). `produce` runs in a thread writing into a pipe; its exception
    is raised by the read that reaches the end. Leaving the block early closes the pipe, so a
    producer still writing stops (BrokenPipeError) instead of blocking forever."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):  # a bigger pipe means fewer wake-ups; not required
        fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_SIZE)
    pipe_out, pipe_in = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    failure: list[BaseException] = []

    def work() -> None:
        try:
            produce(pipe_in)
        except BaseException as exc:  # handed to the reader, which raises it in its thread
            failure.append(exc)
        finally:
            with contextlib.suppress(OSError):  # the reader is gone: nothing left to tell it
                pipe_in.close()

    thread = threading.Thread(target=work, name="stored-form-encoder", daemon=True)
    thread.start()
    try:
        yield _ProducedReader(pipe_out, thread, failure)
    finally:
        pipe_out.close()
        thread.join()
