"""The pipe behind age and zip encoding: all of it arrives, a failure is never a clean end, and a
reader that stops early never leaves the writer blocked."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from typing import BinaryIO

import pytest

from k3s_backup.streams import HashingReader, copy_stream, produced

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
