"""One base for the objects that hold a resource (a connection, a mapped file, a progress line,
a lab server) until closed: the context-manager protocol written once."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closable:
    """A context manager that closes itself on exit, whatever the exit. One that must know
    whether the block raised (to finish a progress line only on success) overrides `finish`."""

    def close(self) -> None:
        """Release what is held; a no-op where nothing is."""

    def finish(self, ok: bool) -> None:
        """Leaving the with block (`ok`: it did not raise): close."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc_type is None)
