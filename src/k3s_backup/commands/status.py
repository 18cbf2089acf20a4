"""`k3s-backup status [--json]`: the last run, the next one, what every location holds, and how
fresh the newest verified off-node copy is. Exit 0 only when nothing is WARN or FAIL, so a
monitoring system can call it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from k3s_backup.clusters import current_identity, others_warnings, split_by_cluster, survey
from k3s_backup.config import Config, load_config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.inventory import LocalManifests, local_copies, target_copies
from k3s_backup.policy import naming
from k3s_backup.policy.offsite import HeldThrough, only_here, remembered
from k3s_backup.policy.schedule import Schedule, longest_gap, next_run
from k3s_backup.policy.schedule import parse as parse_schedule
from k3s_backup.report import human_size
from k3s_backup.scheduling import SystemPaths, config_file, installed_schedules
from k3s_backup.sources.factory import choose_source
from k3s_backup.state import read_state
from k3s_backup.targets.factory import open_target

OK, WARN, FAIL = "OK", "WARN", "FAIL"
WARN_AFTER, FAIL_AFTER = 2, 3  # times the schedule's longest gap


def freshness(age: timedelta, interval: timedelta) -> str:
    if age > interval * FAIL_AFTER:
        return FAIL
    if age > interval * WARN_AFTER:
        return WARN
    return OK


def human_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 0:
        return "in the future (check the clock)"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h ago" if days else f"{hours}h {rest // 60}m ago"


@dataclass
class Location:
    name: str
    copies: int = 0
    bytes: int = 0
    newest: str | None = None  # filename of the newest verified copy
    newest_time: str | None = None  # UTC ISO 8601, from the unix time in its name
    error: str | None = None


@dataclass
class Status:
    schedule: dict[str, Any] = field(default_factory=dict)
    last_run: dict[str, Any] | None = None
    last_drill: dict[str, Any] | None = None  # the last restore rehearsal (`k3s-backup drill`)
    local: Location = field(default_factory=lambda: Location("local"))
    targets: list[Location] = field(default_factory=list)
    newest_offsite: dict[str, Any] | None = None
    local_only: int = 0  # local snapshots no target holds (policy.offsite)
    source: dict[str, str] = field(default_factory=dict)
    findings: list[dict[str, str]] = field(default_factory=list)

    def add(self, level: str, message: str) -> None:
        self.findings.append({"level": level, "message": message})

    @property
    def healthy(self) -> bool:
        return all(f["level"] == OK for f in self.findings)


def _utc(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def active_schedule(config: Config, paths: SystemPaths, status: Status) -> Schedule:
    """The installed schedule (what will really run), else the configured one, flagged."""
    installed = [i for i in installed_schedules(paths) if i.schedule is not None]
    if installed:
        found = installed[0]
        assert found.schedule is not None
        status.schedule.update(installed=str(found.path), scheduler=found.scheduler)
        return found.schedule
    status.schedule.update(installed=None, scheduler=config.scheduler)
    status.add(WARN, "no schedule installed: backups run only by hand (`k3s-backup setup`)")
    return parse_schedule(config.schedule)


def collect_targets(config: Config, status: Status) -> list[int]:
    """Fill in each target; return the unix times of every verified off-node copy."""
    times: list[int] = []
    for target_config in config.targets:
        location = Location(target_config.name)
        try:
            with open_target(target_config, config.cluster_name) as target:
                copies = target_copies(target, config.cluster_name)
        except BackupError as exc:
            location.error = str(exc).removeprefix(f"{target_config.name}: ").splitlines()[0]
            status.add(FAIL, f"target {target_config.name} cannot be read: {location.error}")
            status.targets.append(location)
            continue
        verified = [c for c in copies if c.has_manifest]  # a manifest is written after verifying
        location.copies, location.bytes = len(copies), sum(c.size for c in copies)
        if verified:
            location.newest = verified[-1].name.filename
            location.newest_time = _utc(verified[-1].name.unix)
            times.append(verified[-1].name.unix)
        status.targets.append(location)
    return times


def last_run_findings(state: dict[str, Any], status: Status) -> None:
    last = state.get("last_run")
    if not isinstance(last, dict):
        status.add(FAIL, "no run recorded yet (`k3s-backup run`)")
        return
    status.last_run = last
    outcome = last.get("outcome")
    if outcome == "success":
        return
    level = WARN if outcome == "partial" else FAIL
    failed = [n for n, t in (last.get("targets") or {}).items() if not t.get("ok")]
    detail = f" (failed: {', '.join(failed)})" if failed else ""
    status.add(level, f"last run {last.get('started')} ended {outcome}{detail}")


def last_drill_findings(state: dict[str, Any], status: Status) -> None:
    drill = state.get("last_drill")
    if not isinstance(drill, dict):
        return
    status.last_drill = drill
    if not drill.get("ok"):
        status.add(
            WARN,
            f"the last restore rehearsal ({drill.get('when')}) of {drill.get('name')} failed:"
            f" {drill.get('problem')}; run `k3s-backup drill` once it is fixed",
        )


def other_cluster_findings(config: Config, status: Status) -> None:
    """WARN for every location holding copies of this cluster name from another cluster (or of
    unknown identity): a replacement node must restore them, and rotation never touches them."""
    manifests = LocalManifests(config.state_dir, config.snapshot_dir, "k3s")
    current = current_identity(config, manifests)
    unreadable: list[str] = []  # already a FAIL of collect_targets
    for location, copies in survey(config, manifests, unreadable.append).items():
        _owned, others = split_by_cluster(copies, current)
        for warning in others_warnings(config.cluster_name, location, others):
            status.add(WARN, warning)


def build_status(config: Config, env: Environment, paths: SystemPaths) -> Status:
    status = Status()
    choice = choose_source(config)
    status.source = {"kind": choice.kind, "reason": choice.reason}
    now = env.now()
    schedule = active_schedule(config, paths, status)
    interval = longest_gap(schedule)
    status.schedule.update(
        expression=schedule.expression,
        next_run=next_run(schedule, now).isoformat(),
        interval_seconds=int(interval.total_seconds()),
    )
    state = read_state(config.state_dir)
    last_run_findings(state, status)
    last_drill_findings(state, status)
    local = local_copies(config.snapshot_dir, config.cluster_name)
    status.local.copies, status.local.bytes = len(local), sum(c.size for c in local)
    if local:
        status.local.newest, status.local.newest_time = (
            local[-1].name.filename,
            _utc(local[-1].name.unix),
        )
    times = collect_targets(config, status)
    status.local_only = len(only_here([c.name for c in local], held_through(config, status, state)))
    other_cluster_findings(config, status)
    if not config.targets:
        status.add(FAIL, "no [[targets]] configured: nothing leaves this node")
    elif not times:
        status.add(FAIL, "no verified off-node copy anywhere")
    else:
        newest = max(times)
        age = now - datetime.fromtimestamp(newest, UTC)
        level = freshness(age, interval)
        status.newest_offsite = {
            "time": _utc(newest),
            "age_seconds": int(age.total_seconds()),
            "level": level,
        }
        if level != OK:
            limit = WARN_AFTER if level == WARN else FAIL_AFTER
            status.add(
                level,
                f"newest verified off-node copy is {human_age(age)}, more than {limit} x the"
                f" schedule's interval ({interval})",
            )
    return status


def held_through(config: Config, status: Status, state: dict[str, Any]) -> HeldThrough:
    """What each target holds (policy.offsite): as read now, else as the last run saw it."""
    cluster = config.cluster_name
    return {
        t.name: remembered(state, t.name, cluster)
        if t.error
        else naming.parse(cluster, t.newest or "")
        for t in status.targets
    }


def _print(status: Status, env: Environment) -> None:
    out = env.stdout
    last = status.last_run
    if last:
        snapshot = last.get("snapshot") or {}
        out.write(
            f"Last run:    {last.get('started')}  {last.get('outcome')}"
            f" (exit {last.get('exit_code')}) in {last.get('duration_seconds')}s"
        )
        size = snapshot.get("size")
        out.write(f", {snapshot.get('name')} {human_size(size)}\n" if size else "\n")
        for name, result in (last.get("targets") or {}).items():
            verdict = "ok" if result.get("ok") else f"FAILED: {result.get('error')}"
            out.write(f"             {name}: {verdict}\n")
    else:
        out.write("Last run:    never\n")
    drill = status.last_drill
    if drill:
        verdict = "ok" if drill.get("ok") else f"FAILED: {drill.get('problem')}"
        out.write(f"Last drill:  {drill.get('when')}  {drill.get('name')}: {verdict}\n")
    out.write(f"Source:      {status.source['kind']} ({status.source['reason']})\n")
    sched = status.schedule
    where = sched.get("installed") or "NOT INSTALLED"
    out.write(f"Schedule:    {sched['expression']} ({sched['scheduler']}, {where})\n")
    out.write(f"Next run:    {sched['next_run']}\n")
    for location in [status.local, *status.targets]:
        text = f"{location.copies} copies, {human_size(location.bytes)}"
        if location.error:
            text = f"cannot read: {location.error}"
        elif location.newest_time:
            text += f", newest {location.newest_time}"
        if location is status.local:
            text += f", {status.local_only} only on this node"
        out.write(f"{location.name + ':':<13}{text}\n")
    for finding in status.findings:
        out.write(f"{finding['level']}: {finding['message']}\n")
    out.write("Healthy.\n" if status.healthy else "Not healthy.\n")


def show_status(explicit: Path | None, env: Environment, root: Path, as_json: bool) -> ExitCode:
    paths = SystemPaths(root)
    config = load_config(config_file(explicit, env.environ, paths))
    status = build_status(config, env, paths)
    if as_json:
        data = asdict(status)
        data["healthy"] = status.healthy
        env.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        _print(status, env)
    return ExitCode.OK if status.healthy else ExitCode.FAILED
