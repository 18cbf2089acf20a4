"""The run's target connections, opened in a thread while the snapshot is taken: the SSH
handshake, authentication and SFTP channel (or the service's hello) cost 0.1-0.2 s per
target, which then overlap `k3s etcd-snapshot save` instead of following it.

Connecting only: nothing is listed, written or judged before the snapshot exists, and the
main thread raises each target's failure where it would have met it itself. Whatever was
opened and not handed over (the snapshot failed, a signal came) is closed, by the thread
itself if it is still connecting then."""

from __future__ import annotations

import contextlib
import threading

from k3s_backup.config import TargetConfig
from k3s_backup.targets.base import Target, probes_of
from k3s_backup.targets.factory import open_target


class EarlyConnections:
    def __init__(self, targets: list[TargetConfig], cluster: str, schedule: str) -> None:
        self._configs = targets
        self._cluster = cluster
        self._schedule = schedule
        self._opened: dict[str, Target] = {}
        self._not_opened: dict[str, BaseException] = {}  # what open_target raised
        self._not_connected: dict[str, BaseException] = {}  # what connecting raised
        self._lock = threading.Lock()
        self._abandoned = False
        self._thread = threading.Thread(target=self._connect_all, name="connect", daemon=True)

    def start(self) -> EarlyConnections:
        self._thread.start()
        return self

    def _connect_all(self) -> None:
        for config in self._configs:
            with self._lock:
                if self._abandoned:
                    return
            try:
                target = open_target(config, self._cluster, self._schedule)
            except BaseException as exc:  # handed to the main thread, raised there
                self._not_opened[config.name] = exc
                continue
            try:
                probes_of(target).connect()
            except BaseException as exc:  # raised where the first use would have met it
                self._not_connected[config.name] = exc
            with self._lock:
                if self._abandoned:
                    target.close()
                    return
                self._opened[config.name] = target

    def take(self, config: TargetConfig) -> Target:
        """`config`'s target, or what opening it raised; the caller's to close once taken."""
        self._thread.join()
        if config.name in self._not_opened:
            raise self._not_opened.pop(config.name)
        return self._opened.pop(config.name)

    def check_connected(self, config: TargetConfig) -> None:
        """Raise what connecting to `config`'s target raised, if it failed."""
        if config.name in self._not_connected:
            raise self._not_connected.pop(config.name)

    def abandon(self) -> None:
        """Close what was opened and not taken; a thread still connecting closes its own."""
        with self._lock:
            self._abandoned = True
            left = list(self._opened.values())
            self._opened.clear()
        for target in left:
            with contextlib.suppress(Exception):
                target.close()
