"""Monitoring hooks around a run, as borgmatic has them: `start` before, `finish` after (a ping
on success or failure, the webhook on failure and optionally on success). A hook that fails is
logged as a warning and never changes the run's exit code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k3s_backup.config import NotifySettings
from k3s_backup.monitoring import webhook
from k3s_backup.monitoring.http import DeliveryError, origin
from k3s_backup.monitoring.ping import Pinger
from k3s_backup.report import Reporter


class Hooks:
    def __init__(self, notify: NotifySettings, cluster: str, reporter: Reporter) -> None:
        self.notify = notify
        self.cluster = cluster
        self.report = reporter
        self.pinger = None
        if notify.ping_url:
            self.pinger = Pinger(notify.ping_url, notify.timeout, notify.retries)

    def _deliver(self, what: str, url: str, call: Callable[[], None]) -> None:
        try:
            call()
        except DeliveryError as exc:
            self.report.warn(
                f"{what} to {origin(url)} failed: {exc}; the backup itself is not affected"
            )

    def start(self) -> None:
        if self.pinger is not None:
            self._deliver("ping (start)", self.pinger.url, self.pinger.start)

    def finish(self, report: dict[str, Any]) -> None:
        """After the run: `report` is the run record (outcome, exit_code, error, ...)."""
        ok = report.get("exit_code") == 0
        lines = list(self.report.lines)  # before our own warnings join them
        if self.pinger is not None:
            ping = self.pinger.success if ok else self.pinger.fail
            what = "ping (success)" if ok else "ping (fail)"
            self._deliver(what, self.pinger.url, lambda: ping(lines))
        url = self.notify.webhook_url
        if url and (not ok or self.notify.webhook_on_success):
            body = webhook.payload(report, self.cluster, lines)
            n = self.notify
            self._deliver("webhook", url, lambda: webhook.send(url, body, n.timeout, n.retries))
