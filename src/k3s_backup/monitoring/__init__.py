"""Knowing when backups stop: Prometheus metrics (metrics.py), healthchecks-style pings
(ping.py) and a JSON webhook (webhook.py) over one small HTTP layer (http.py), dispatched as
start/finish hooks (hooks.py). None of them ever changes a backup's exit code."""
