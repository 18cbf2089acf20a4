"""Work on a target that survives a link blip: every command that works on copies (run, list,
verify, prune, fetch, restore, and inspect, diff, drill, extract through fetch) opens its
targets here, so each honours the target's `retries` and `retry_delay` (the place restic wraps
its retry backend). The probes of setup, doctor and status ask once: reachability is what they
report.

The unit tried again is the caller's whole work on a new connection, never one call: a copy's
stream is encoded while it is read and cannot rewind, and a download may have written half a
file. So `work` starts from scratch each time: it re-creates what it sends and resets (or
re-creates) where it writes. Only a failed link (TargetUnreachable: refused, reset, cut, timed
out, as each backend classifies it) is tried again; a refusal by the target, a copy that does
not verify or an input refused is the caller's at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar

from k3s_backup.config import Config, TargetConfig
from k3s_backup.errors import BackupError, TargetUnreachable
from k3s_backup.plumbing.retry import Retry
from k3s_backup.policy.schedule import DEFAULT_SCHEDULE
from k3s_backup.report import Reporter
from k3s_backup.targets.base import Target
from k3s_backup.targets.factory import open_target

T = TypeVar("T")

# Within `one_connection_each()`: the target opened for each target name, kept open for the
# first attempt of every unit of work on it (restore: listing, manifest, copy, bundle).
_KEPT: ContextVar[dict[str, Target] | None] = ContextVar("kept_targets", default=None)


@contextlib.contextmanager
def one_connection_each() -> Iterator[None]:
    """Units of work on a target in this block share one connection (one SSH handshake, one
    S3 client) while it holds; a link failure drops it, and the retry opens a new one."""
    kept: dict[str, Target] = {}
    token = _KEPT.set(kept)
    try:
        yield
    finally:
        _KEPT.reset(token)
        for target in kept.values():
            target.close()


def link_failed(exc: Exception) -> bool:
    return isinstance(exc, TargetUnreachable)


class Retrying:
    """Units of work on the target `config` describes, each on a connection of its own and
    done again on a new one after a link failure, said once per retry through `reporter`.
    `attempts` is how many the last unit took."""

    def __init__(
        self,
        config: TargetConfig,
        cluster: str,
        reporter: Reporter,
        schedule: str = DEFAULT_SCHEDULE,  # dates an S3 Object Lock: run's (targets/factory.py)
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.schedule = schedule
        self.report = reporter
        self.retry = Retry(
            config.retries,
            link_failed,
            lambda _failed: float(config.retry_delay),
            reporter.env.sleep,
            self._notice,
        )

    @property
    def attempts(self) -> int:
        return self.retry.attempt

    def __call__(self, work: Callable[[Target], T], first: Callable[[], T] | None = None) -> T:
        """`work` on a newly opened target; `first`, when given, is the first attempt (the
        caller's own, on a connection it already has open)."""

        kept = _KEPT.get()

        def attempt() -> T:
            if first is not None and self.retry.attempt == 1:
                return first()
            if kept is not None and self.retry.attempt == 1:
                return self._on_kept(kept, work)
            with open_target(self.config, self.cluster, self.schedule) as target:
                return work(target)

        return self.retry(attempt)

    def _on_kept(self, kept: dict[str, Target], work: Callable[[Target], T]) -> T:
        name = self.config.name
        if name not in kept:
            kept[name] = open_target(self.config, self.cluster, self.schedule)
        try:
            return work(kept[name])
        except TargetUnreachable:
            kept.pop(name).close()  # the link is gone: the retry opens a new connection
            raise

    def _notice(self, exc: Exception, delay: float, attempt: int, attempts: int) -> None:
        name = self.config.name
        said = without_name(name, exc)
        self.report.warn(
            f"target {name}: {said}; trying again in {delay:g} s (attempt {attempt} of {attempts})"
        )


def on_target(
    config: TargetConfig, cluster: str, reporter: Reporter, work: Callable[[Target], T]
) -> T:
    """`work` on the target, tried again after a link failure as its configuration says."""
    return Retrying(config, cluster, reporter)(work)


def on_every_target(
    config: Config,
    reporter: Reporter,
    work: Callable[[Target], list[T]],
    failed: Callable[[str, str], list[T]],
) -> list[T]:
    """`work` on every configured target in turn (each as on_target); a target that fails
    gives `failed(its name, the reason)` in its place, and the next target is tried."""
    found: list[T] = []
    for target_config in config.targets:
        try:
            found += on_target(target_config, config.cluster_name, reporter, work)
        except BackupError as exc:
            found += failed(target_config.name, without_name(target_config.name, exc))
    return found


def without_name(name: str, exc: BaseException) -> str:
    """A target's error without the target's name a backend's message starts with, for a
    caller that names the target itself (said once)."""
    return str(exc).removeprefix(f"{name}: ")
