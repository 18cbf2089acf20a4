"""A whole run as `k3s-backup run` and setup's first backup start it: under the run lock,
pinged and published around (monitoring), its outcome recorded in the state file."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any, TextIO

from k3s_backup.backup.connecting import EarlyConnections
from k3s_backup.backup.context import unexpected
from k3s_backup.backup.local_rotation import rotate_local_safely
from k3s_backup.backup.phases import Phases
from k3s_backup.backup.run import NewChainRefused, Run
from k3s_backup.backup.unchecked import SnapshotCheckFailed
from k3s_backup.config import Config
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode, Interrupted, SnapshotError
from k3s_backup.monitoring.hooks import Hooks
from k3s_backup.monitoring.metrics import publish_metrics
from k3s_backup.plumbing.lock import exclusive_run
from k3s_backup.plumbing.signals import SignalGuard
from k3s_backup.report import Reporter
from k3s_backup.state import record_run


def run_backup(
    config: Config, env: Environment, json_out: TextIO | None = None, new_cluster: bool = False
) -> ExitCode:
    """The whole run; with `json_out`, the run report goes there as JSON instead of the
    progress lines on stdout (they are still logged). `new_cluster`: start this cluster's
    chain even where another cluster of this name has copies (`run --new-cluster`)."""
    reporter = Reporter(env, config.log_file, echo_info=json_out is None)
    if not config.targets:
        reporter.error(
            "no [[targets]] configured: a backup that never leaves this node is lost with its"
            " disk; add a target (see `k3s-backup config init`)"
        )
        return ExitCode.USAGE
    with exclusive_run(config.state_dir), SignalGuard():
        code, record = _monitored_run(config, env, reporter, new_cluster)
    if json_out is not None:
        json_out.write(json.dumps(record, indent=2) + "\n")
    return code


def _monitored_run(
    config: Config, env: Environment, reporter: Reporter, new_cluster: bool
) -> tuple[ExitCode, dict[str, Any]]:
    """Pings around the run, metrics and webhooks after it; none of them changes the outcome."""
    hooks = Hooks(config.notify, config.cluster_name, reporter)
    hooks.start()
    try:
        code, record = _locked_run(config, env, reporter, new_cluster)
    except Exception as exc:  # a crash is a failure the monitors must hear about
        hooks.finish({"outcome": "error", "exit_code": 1, "error": f"crashed: {exc!r}"})
        raise
    publish_metrics(config, env, reporter)
    hooks.finish(record)
    return code, record


def _locked_run(
    config: Config, env: Environment, reporter: Reporter, new_cluster: bool
) -> tuple[ExitCode, dict[str, Any]]:
    started, clock = env.now(), time.monotonic()
    record: dict[str, Any] = {
        "cluster": config.cluster_name,
        "started": started.isoformat(),
        "snapshot": None,
        "targets": {},
        "local": None,
        "error": None,
    }
    run = Run(config, env, reporter, new_cluster)
    reporter.info(f"Starting etcd backup of cluster {config.cluster_name}")
    early = EarlyConnections(config.targets, config.cluster_name, config.schedule).start()
    try:
        return _snapshot_and_ship(run, record, clock, early)
    finally:
        early.abandon()  # whatever the run did not take: the snapshot failed, a signal


def _snapshot_and_ship(
    run: Run, record: dict[str, Any], clock: float, early: EarlyConnections
) -> tuple[ExitCode, dict[str, Any]]:
    config, env, reporter = run.config, run.env, run.report
    try:
        with run.phases.timed("snapshot"):
            snapshot = run.take_snapshot()
    except (SnapshotError, OSError) as exc:  # OSError: its manifest could not be recorded
        return _snapshot_failed(
            run, record, clock, unexpected(exc) if isinstance(exc, OSError) else exc
        )
    except Interrupted as stop:
        return _interrupted(run, record, stop, clock)
    record["snapshot"] = {
        "name": snapshot.name.filename,
        "size": snapshot.size,
        "cluster_uid": run.identity.uid if run.identity else None,
        "objects": run.identity.objects if run.identity else None,
    }
    try:
        results = run.ship_everywhere(snapshot.name, early)
        run.doing = "local rotation"
        rotation_problem = rotate_local_safely(run, snapshot.name, results)
    except NewChainRefused as exc:
        record["snapshot"], record["error"] = None, str(exc)
        reporter.error(record["error"])
        return _finish(config, env, record, clock, run.phases, ExitCode.FAILED, reporter)
    except SnapshotCheckFailed as exc:  # its trailer, checked as it was first read
        record["snapshot"] = None
        return _snapshot_failed(run, record, clock, exc)
    except Interrupted as stop:
        return _interrupted(run, record, stop, clock)
    record["local"] = run.local_summary()
    run.summarize(results, record["local"])
    record["targets"] = {name: asdict(r) for name, r in results.items()}
    failed = [name for name, r in results.items() if not r.ok]
    if failed or rotation_problem:
        what = [f"{', '.join(failed)} failed"] if failed else []
        what += [rotation_problem] if rotation_problem else []
        record["error"] = (
            f"backup PARTIAL: snapshot {snapshot.name.filename} kept locally, but {'; '.join(what)}"
        )
        reporter.error(record["error"])
        return _finish(config, env, record, clock, run.phases, ExitCode.PARTIAL, reporter)
    reporter.info(
        f"Backup complete: {snapshot.name.filename} on {len(results)} target(s), verified"
    )
    return _finish(config, env, record, clock, run.phases, ExitCode.OK, reporter)


def _snapshot_failed(
    run: Run, record: dict[str, Any], clock: float, reason: Exception
) -> tuple[ExitCode, dict[str, Any]]:
    record["error"] = f"snapshot failed, nothing shipped: {reason}"
    run.report.error(record["error"])
    return _finish(run.config, run.env, record, clock, run.phases, ExitCode.FAILED, run.report)


def _interrupted(
    run: Run, record: dict[str, Any], stop: Interrupted, clock: float
) -> tuple[ExitCode, dict[str, Any]]:
    """One line naming the signal and the phase, on stderr, in the log and the state file;
    the cleanups (a temporary upload removed) already ran on the way here."""
    snapshot = (record["snapshot"] or {}).get("name")
    kept = f"snapshot {snapshot} kept locally, the next run catches up" if snapshot else None
    record["error"] = (
        f"interrupted ({stop.signal_name}) during {run.doing}; {kept or 'nothing shipped'}"
    )
    run.report.error(record["error"])
    return _finish(run.config, run.env, record, clock, run.phases, stop.exit_code, run.report)


def _finish(
    config: Config,
    env: Environment,
    record: dict[str, Any],
    clock: float,
    phases: Phases,
    code: ExitCode,
    reporter: Reporter,
) -> tuple[ExitCode, dict[str, Any]]:
    record.update(
        finished=env.now().isoformat(),
        outcome={
            0: "success",
            1: "failed",
            3: "partial",
            130: "interrupted",
            143: "interrupted",
        }.get(int(code), "error"),
        exit_code=int(code),
        duration_seconds=round(time.monotonic() - clock, 3),
        phases=phases.rounded(),
    )
    try:
        record_run(config.state_dir, record)
    except OSError as exc:
        reporter.warn(f"cannot record the run in {config.state_dir}: {exc.strerror}")
    return code, record
