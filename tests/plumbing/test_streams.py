"""The pipe behind age and zip encoding: all of it arrives, a failure is never a clean end, and a
reader that stops early never leaves the writer blocked."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from k3s_backup.plumbing.streams import (
    CHUNK_SIZE,
    CappedWriter,
    HashingReader,
    HashingWriter,
    RefusedInput,
    copy_capped,
    copy_stream,
    produced,
    read_regular,
)

DATA = os.urandom(5 << 20)  # several times the pipe's size


def write_all(dest: BinaryIO) -> None:
    for start in range(0, len(DATA), 300_000):
        dest.write(DATA[start : start + 300_000])


def test_everything_produced_is_read_in_order() -> None:
    out = io.BytesIO()
    with produced(write_all) as stream:
        copy_stream(stream, out)
    assert out.getvalue() == DATA


def test_a_producer_failing_half_way_fails_the_read_that_reaches_the_end() -> None:
    def fail_half_way(dest: BinaryIO) -> None:
        dest.write(DATA[: 1 << 20])
        raise OSError(28, "No space left on device")

    out = io.BytesIO()
    with pytest.raises(OSError, match="No space left"), produced(fail_half_way) as stream:
        copy_stream(stream, out)
    assert out.getvalue() == DATA[: 1 << 20]  # what came before the failure, not a clean end


def test_a_reader_stopping_early_releases_the_blocked_producer() -> None:
    ended: list[BaseException | None] = []

    def produce(dest: BinaryIO) -> None:
        try:
            write_all(dest)
            ended.append(None)
        except BaseException as exc:
            ended.append(exc)
            raise

    with produced(produce) as stream:
        assert stream.read(1000) == DATA[:1000]
    assert len(ended) == 1 and isinstance(ended[0], BrokenPipeError)
    assert not any(t.name == "stored-form-encoder" for t in threading.enumerate())


def test_hashing_reader_counts_and_hashes_what_passes() -> None:
    reader = HashingReader(io.BytesIO(DATA))
    assert copy_stream(reader, io.BytesIO()) == len(DATA)
    assert (reader.size, reader.hexdigest()) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    counting = HashingReader(io.BytesIO(b"abc"), hashing=False)
    counting.read()
    assert counting.size == 3
    with pytest.raises(ValueError, match="not asked to hash"):
        counting.hexdigest()


def test_hashing_writer_hashes_what_it_writes_and_tells_each_chunk_as_it_passes() -> None:
    out, told = io.BytesIO(), list[int]()
    writer = HashingWriter(out, told.append)
    for chunk in (DATA[:300_000], DATA[300_000:]):
        writer.write(chunk)
    assert (out.getvalue(), writer.size) == (DATA, len(DATA))
    assert writer.digest.hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert told == [300_000, len(DATA) - 300_000]


class Endless:
    """/dev/zero as a Readable that counts what was asked of it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def read(self, size: int = -1, /) -> bytes:
        assert size > 0, "an unbounded read of an endless source"
        self.read_bytes += size
        return bytes(size)


@pytest.mark.parametrize("limit", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 7])
def test_a_capped_copy_reads_at_most_one_byte_past_its_limit(limit: int) -> None:
    source, out = Endless(), io.BytesIO()
    with pytest.raises(RefusedInput, match=f"the copy holds more than {limit} bytes"):
        copy_capped(source, out, limit, "the copy", "its manifest")
    assert source.read_bytes == limit + 1
    assert len(out.getvalue()) <= limit


def test_a_capped_copy_of_exactly_the_limit_is_whole() -> None:
    out = io.BytesIO()
    assert copy_capped(io.BytesIO(DATA), out, len(DATA), "the copy", "its manifest") == len(DATA)
    assert out.getvalue() == DATA


def test_a_capped_writer_refuses_the_write_that_would_pass_its_limit() -> None:
    out = io.BytesIO()
    writer = CappedWriter(out, 10, "decoded", "its plain size")
    writer.write(b"x" * 10)
    with pytest.raises(RefusedInput, match="decoded holds more than 10 bytes"):
        writer.write(b"y")
    assert out.getvalue() == b"x" * 10 and writer.refused is not None


def test_only_regular_files_are_opened_never_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "manifest.json"
    real.write_bytes(b"{}")
    link = tmp_path / "link.json"
    link.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert read_regular(real, 10, "manifest") == b"{}"
    with pytest.raises(RefusedInput, match=r"link\.json is a symbolic link"):
        read_regular(link, 10, "manifest")
    with pytest.raises(RefusedInput, match=r"fifo\.json is not a regular file"):  # never blocks
        read_regular(fifo, 10, "manifest")
    with pytest.raises(RefusedInput, match="manifest holds more than 1 bytes"):
        read_regular(real, 1, "manifest")
