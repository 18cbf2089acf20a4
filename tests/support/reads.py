"""How many bytes a command in this process reads from the files of a directory: every file
opened there for reading (`Path.open`, as the program opens snapshots) is handed over wrapped in
an observer that counts what its reads return and passes everything else through."""

from __future__ import annotations

import pathlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


class _Counted:
    def __init__(self, stream: Any, name: str, counts: Counter[str]) -> None:
        self._stream = stream
        self._name = name
        self._counts = counts

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._stream.read(size)
        self._counts[self._name] += len(data)
        return data

    def __enter__(self) -> _Counted:
        self._stream.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def bytes_read_from(
    monkeypatch: pytest.MonkeyPatch, directory: pathlib.Path
) -> Iterator[Counter[str]]:
    """File name -> bytes read from it through `Path.open` within the block."""
    counts: Counter[str] = Counter()
    real_open = pathlib.Path.open

    def observed(self: pathlib.Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        stream = real_open(self, mode, *args, **kwargs)
        if "r" in mode and self.parent == directory:
            return _Counted(stream, self.name, counts)
        return stream

    with monkeypatch.context() as patch:
        patch.setattr(pathlib.Path, "open", observed)
        yield counts
