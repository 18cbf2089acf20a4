"""The one retry loop: an action tried again after a failure that may heal (a dropped link, a
busy server), with a wait before each new attempt. Targets (targets/retry.py) and notifiers
(monitoring/http.py) use it, each with its own idea of what heals and how long to wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from k3s_backup.plumbing.signals import safe_point

T = TypeVar("T")
Notice = Callable[[Exception, float, int, int], None]  # (failure, wait, next attempt, attempts)


class Retry:
    """Up to 1 + `retries` attempts of an action. A failure `transient` accepts is tried
    again after `wait(n)` seconds (n: the attempt that failed), said first through `notice`;
    any other failure, or the last attempt's, is raised. `attempt` is the number of the
    attempt under way, or of the last one made."""

    def __init__(
        self,
        retries: int,
        transient: Callable[[Exception], bool],
        wait: Callable[[int], float],
        sleep: Callable[[float], None] = time.sleep,
        notice: Notice | None = None,
    ) -> None:
        self.attempts = retries + 1
        self.transient = transient
        self.wait = wait
        self.sleep = sleep
        self.notice = notice
        self.attempt = 0

    def __call__(self, action: Callable[[], T]) -> T:
        self.attempt = 0
        while True:
            self.attempt += 1
            try:
                return action()
            except Exception as exc:
                if self.attempt >= self.attempts or not self.transient(exc):
                    raise
                delay = self.wait(self.attempt)
                if self.notice is not None:
                    self.notice(exc, delay, self.attempt + 1, self.attempts)
            self.sleep(delay)
            safe_point()  # a signal noted during the wait (plumbing/signals.py)
