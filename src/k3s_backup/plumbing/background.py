"""One call run in a thread while the caller goes on (a subprocess to wait for, an I/O wait):
its result, or its exception, when the caller asks for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Result(Generic[T]):
    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._value: list[T] = []  # its one result, once returned
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="background", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            self._value.append(self._call())
        except BaseException as exc:  # raised again in the caller's thread
            self._failure = exc

    def __call__(self) -> T:
        self._thread.join()
        if self._failure is not None:
            raise self._failure
        return self._value[0]


def in_background(call: Callable[[], T]) -> Callable[[], T]:
    """Start `call` now; the returned function waits for it and gives its result."""
    return _Result(call)
