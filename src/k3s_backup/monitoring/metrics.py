"""Prometheus metrics from the state file (the last run, the last success, the last drill),
written atomically for node_exporter's textfile collector and printed by `k3s-backup metrics`.

Every value is a gauge of a past event; ages are as of writing, so alert on
`time() - k3s_backup_last_success_timestamp_seconds` rather than on an age. Copy counts of a
target that failed in the last run are those of the last run that reached it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from k3s_backup import __version__
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.plumbing.atomic import write_atomic
from k3s_backup.report import Reporter
from k3s_backup.state import read_state

if TYPE_CHECKING:  # prometheus_client costs ~60 ms of CPU to import: a run without a
    # metrics_textfile never needs it
    from prometheus_client import CollectorRegistry, Gauge

PREFIX = "k3s_backup_"
Record = dict[str, Any]


def _unix(iso: object) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return None


class _Gauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.made: dict[str, Gauge] = {}

    def set(self, name: str, doc: str, value: float | None, **labels: str) -> None:
        """One sample; the gauge is created (once) on first use, so a value never known (no
        run yet, say) leaves no series at all."""
        if value is None:
            return
        gauge = self.made.get(name)
        if gauge is None:
            from prometheus_client import Gauge

            gauge = Gauge(PREFIX + name, doc, list(labels), registry=self.registry)
            self.made[name] = gauge
        (gauge.labels(**labels) if labels else gauge).set(value)


def _last_run(gauges: _Gauges, run: Record) -> None:
    gauges.set(
        "last_run_timestamp_seconds",
        "When the last run finished (Unix time).",
        _unix(run.get("finished") or run.get("started")),
    )
    code = run.get("exit_code")
    gauges.set("last_run_success", "1 if the last run succeeded, else 0.", float(code == 0))
    gauges.set(
        "last_run_exit_code",
        "Exit code of the last run (0 ok, 1 failed, 3 partial).",
        code if isinstance(code, int) else None,
    )
    gauges.set(
        "last_run_duration_seconds", "How long the last run took.", run.get("duration_seconds")
    )
    for phase, seconds in (run.get("phases") or {}).items():
        gauges.set(
            "last_run_phase_duration_seconds",
            "Seconds the last run spent per phase (snapshot, upload, verify, rotate).",
            seconds,
            phase=phase,
        )
    gauges.set(
        "last_snapshot_size_bytes",
        "Size of the last run's snapshot.",
        (run.get("snapshot") or {}).get("size"),
    )


def _location(gauges: _Gauges, location: str, entry: Record, now: datetime) -> None:
    gauges.set("copies", "Copies of ours at a location.", entry.get("copies"), location=location)
    gauges.set(
        "copies_size_bytes",
        "Bytes of our copies at a location.",
        entry.get("bytes"),
        location=location,
    )
    newest = entry.get("newest_unix")
    if isinstance(newest, int):
        gauges.set(
            "newest_copy_timestamp_seconds",
            "Creation time of the newest verified copy at a location (Unix time).",
            newest,
            location=location,
        )
        gauges.set(
            "newest_copy_age_seconds",
            "Age of the newest verified copy at a location, when these metrics were written.",
            now.timestamp() - newest,
            location=location,
        )


def _locations(gauges: _Gauges, last: Record, success: Record, now: datetime) -> None:
    local = last.get("local") or success.get("local")
    if local:
        _location(gauges, "local", local, now)
        gauges.set(
            "local_only_snapshots",
            "Local snapshots no target held after the last run: they exist only on this node.",
            local.get("only_here"),
        )
    targets = dict(success.get("targets") or {})
    for name, entry in (last.get("targets") or {}).items():
        gauges.set(
            "last_run_target_success",
            "1 if the last run shipped to this target, else 0.",
            float(bool(entry.get("ok"))),
            target=name,
        )
        gauges.set(
            "last_run_target_attempts",
            "Attempts the last run made at this target (over 1: its link failed, then retried).",
            entry.get("attempts"),
            target=name,
        )
        if entry.get("ok") or name not in targets:
            targets[name] = entry
    for name, entry in targets.items():
        if entry.get("ok"):
            _location(gauges, name, entry, now)


def _drill(gauges: _Gauges, drill: Record) -> None:
    gauges.set(
        "last_drill_timestamp_seconds",
        "When the last restore drill ran (Unix time).",
        _unix(drill.get("when")),
    )
    gauges.set(
        "last_drill_success",
        "1 if the last restore drill passed, else 0.",
        float(bool(drill.get("ok"))),
    )
    seconds = drill.get("restore_seconds")
    if isinstance(seconds, int | float):
        gauges.set(
            "last_drill_restore_seconds",
            "How long the last drill's restore took, to an etcd answering (recovery time).",
            float(seconds),
        )


def registry_of(state: Record, cluster: str, now: datetime) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    gauges = _Gauges(registry)
    gauges.set("info", "k3s-backup's version and cluster.", 1, version=__version__, cluster=cluster)
    last, success = state.get("last_run"), state.get("last_success")
    if isinstance(last, dict):
        _last_run(gauges, last)
        _locations(gauges, last, success if isinstance(success, dict) else {}, now)
        # 0 (1970) when nothing ever succeeded: "no success in 26 h" fires on it too.
        when = _unix(success.get("finished") or success.get("started")) if success else 0.0
        gauges.set("last_success_timestamp_seconds", "When the last successful run finished.", when)
    if isinstance(state.get("last_drill"), dict):
        _drill(gauges, state["last_drill"])
    return registry


def render(config: Config, now: datetime) -> str:
    """The metrics in Prometheus's text format, from the state file."""
    from prometheus_client import generate_latest

    state = read_state(config.state_dir)
    return generate_latest(registry_of(state, config.cluster_name, now)).decode()


def publish_metrics(config: Config, env: Environment, reporter: Reporter) -> None:
    """Rewrite `metrics_textfile` if configured: a complete file renamed into place, so
    node_exporter never reads half of one. Not prometheus-client's write_to_textfile: it opens
    `<path>.<pid>.<tid>` with a plain open() as root, following a symlink planted there. Mode
    0644: node_exporter reads it as its own user. Failing only warns."""
    path = config.metrics_textfile
    if path is None:
        return
    from prometheus_client import generate_latest

    state = read_state(config.state_dir)
    try:
        text = generate_latest(registry_of(state, config.cluster_name, env.now()))
        write_atomic(path, text, mode=0o644, make_parents=False)
    except OSError as exc:
        reporter.warn(f"cannot write metrics to {path}: {exc.strerror or exc}")
