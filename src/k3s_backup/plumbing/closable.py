"""One base for the objects that hold a resource (a connection, a mapped file) until closed."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closable:
    """A context manager that closes itself on exit, whatever the exit."""

    def close(self) -> None:
        """Release what is held; a no-op where nothing is."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
