"""A JSON POST of the run report, for chat and incident tools. `text` is a one-line summary
that Slack- and Mattermost-style incoming webhooks show as is; `report` is what `run --json`
prints."""

from __future__ import annotations

import json
import socket
from typing import Any

from k3s_backup.monitoring.http import post

TAIL_LINES = 50


def summary(report: dict[str, Any], cluster: str, host: str) -> str:
    outcome = report.get("outcome", "error")
    text = f"k3s-backup on {host}: backup of {cluster} {outcome} (exit {report.get('exit_code')})"
    return f"{text}: {report['error']}" if report.get("error") else text


def payload(report: dict[str, Any], cluster: str, lines: list[str]) -> dict[str, Any]:
    host = socket.gethostname()
    return {
        "text": summary(report, cluster, host),
        "event": "success" if report.get("exit_code") == 0 else "failure",
        "cluster": cluster,
        "host": host,
        "report": report,
        "log_tail": lines[-TAIL_LINES:],
    }


def send(url: str, body: dict[str, Any], timeout: float, retries: int) -> None:
    post(url, json.dumps(body).encode(), "application/json", timeout, retries)
