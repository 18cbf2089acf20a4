"""`k3s-backup status [--json]`: the last run, the next one, what every location holds, and how
fresh this node's newest verified off-node copy is (other nodes' newest shown beside it). Exit 0
only when nothing is WARN or FAIL, so a monitoring system can call it.

Names are written by whoever can write to a location: a copy named in the future (past
CLOCK_SKEW) is never fresh and is flagged, and a copy of another node never makes this one fresh.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from k3s_backup.catalogue.clusters import (
    current_identity,
    others_warnings,
    split_by_cluster,
    survey,
)
from k3s_backup.catalogue.inventory import Copy, local_copies, local_manifests, target_copies
from k3s_backup.checks import FAIL, FAIL_AFTER, OK, WARN, WARN_AFTER, freshness, human_age
from k3s_backup.cli_options import ROOT_OPTION, Context, epilog, json_option, pass_context
from k3s_backup.config import Config, load_config
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode
from k3s_backup.policy import naming
from k3s_backup.policy.offsite import HeldThrough, only_here, remembered
from k3s_backup.policy.schedule import Schedule, longest_gap, next_run
from k3s_backup.policy.schedule import parse as parse_schedule
from k3s_backup.report import human_size, plural, shown_time
from k3s_backup.scheduling import SystemPaths, config_file, installed_schedules
from k3s_backup.sources.factory import choose_source, node_name
from k3s_backup.state import read_state
from k3s_backup.targets.factory import open_target
from k3s_backup.targets.retry import without_name

CLOCK_SKEW = timedelta(minutes=5)  # a name this far ahead of our clock is from the future


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


def in_the_future(copy: Copy, now: datetime) -> bool:
    return copy.name.unix > (now + CLOCK_SKEW).timestamp()


def flag_future(copies: list[Copy], now: datetime, status: Status) -> list[Copy]:
    """`copies` without those named in the future, each of which is a WARN naming it."""
    for copy in copies:
        if in_the_future(copy, now):
            # No datetime from the name: 12 digits reach past the year 9999.
            ahead = human_age(timedelta(seconds=copy.name.unix - now.timestamp()))
            ahead = ahead.removesuffix(" ago")
            status.add(
                WARN,
                f"{copy.name.filename} on {copy.location} is named {ahead} in the future"
                f" (more than the {int(CLOCK_SKEW.total_seconds() // 60)} min clock-skew"
                " allowance): not counted as fresh; check that node's clock, or remove the file"
                " if nobody made it",
            )
    return [copy for copy in copies if not in_the_future(copy, now)]


def collect_targets(config: Config, status: Status, now: datetime) -> list[Copy]:
    """Fill in each target; return every verified off-node copy not named in the future."""
    found: list[Copy] = []
    for target_config in config.targets:
        location = Location(target_config.name)
        try:
            with open_target(target_config, config.cluster_name) as target:
                copies = target_copies(target, config.cluster_name)
        except BackupError as exc:
            location.error = without_name(target_config.name, exc).splitlines()[0]
            status.add(FAIL, f"target {target_config.name} cannot be read: {location.error}")
            status.targets.append(location)
            continue
        location.copies, location.bytes = len(copies), sum(c.size for c in copies)
        copies = flag_future(copies, now, status)
        verified = [c for c in copies if c.has_manifest]  # a manifest is written after verifying
        if verified:
            location.newest = verified[-1].name.filename
            location.newest_time = _utc(verified[-1].name.unix)
        found += verified
        status.targets.append(location)
    return found


def this_node(config: Config, state: dict[str, Any], local: list[Copy]) -> str:
    """The node whose copies decide freshness: the one our last run's snapshot was named
    for, else the newest local copy's (K3s names them), else the configured or host name."""
    for record in (state.get("last_success"), state.get("last_run")):
        snapshot = record.get("snapshot") if isinstance(record, dict) else None
        name = snapshot.get("name") if isinstance(snapshot, dict) else None
        parsed = naming.parse(config.cluster_name, name) if isinstance(name, str) else None
        if parsed is not None:
            return parsed.node
    return local[-1].name.node if local else node_name(config)


def _newest(copy: Copy, now: datetime) -> dict[str, Any]:
    age = now - datetime.fromtimestamp(copy.name.unix, UTC)
    return {
        "node": copy.name.node,
        "name": copy.name.filename,
        "location": copy.location,
        "time": _utc(copy.name.unix),
        "age_seconds": int(age.total_seconds()),
    }


def freshness_findings(
    copies: list[Copy], node: str, now: datetime, interval: timedelta, status: Status
) -> None:
    """This node's newest verified off-node copy decides the level; the other nodes' newest
    are listed beside it and never make this node fresh."""
    newest: dict[str, Copy] = {}
    for copy in sorted(copies, key=lambda c: c.name):
        newest[copy.name.node] = copy
    others = [_newest(newest[other], now) for other in sorted(newest) if other != node]
    own = newest.get(node)
    if own is None:
        elsewhere = f" (other nodes have: {', '.join(sorted(newest))})" if others else ""
        status.add(FAIL, f"no verified off-node copy of this node ({node}) anywhere{elsewhere}")
        return
    age = now - datetime.fromtimestamp(own.name.unix, UTC)
    level = freshness(age, interval)
    status.newest_offsite = {**_newest(own, now), "level": level, "other_nodes": others}
    if level != OK:
        limit = WARN_AFTER if level == WARN else FAIL_AFTER
        status.add(
            level,
            f"newest verified off-node copy of this node ({node}) is {human_age(age)}, more than"
            f" {limit} x the schedule's interval ({interval})",
        )


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
    status.add(level, f"last run {shown_time(last.get('started'))} ended {outcome}{detail}")


def last_drill_findings(state: dict[str, Any], status: Status) -> None:
    drill = state.get("last_drill")
    if not isinstance(drill, dict):
        return
    status.last_drill = drill
    if not drill.get("ok"):
        status.add(
            WARN,
            f"the last restore rehearsal ({shown_time(drill.get('when'))}) of {drill.get('name')}"
            " failed:"
            f" {drill.get('problem')}; run `k3s-backup drill` once it is fixed",
        )


def other_cluster_findings(config: Config, status: Status) -> None:
    """WARN for every location holding copies of this cluster name from another cluster (or of
    unknown identity): a replacement node must restore them, and rotation never touches them."""
    manifests = local_manifests(config)
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
    local = flag_future(local, now, status)
    if local:
        status.local.newest, status.local.newest_time = (
            local[-1].name.filename,
            _utc(local[-1].name.unix),
        )
    offsite = collect_targets(config, status, now)
    node = this_node(config, state, local)
    held = held_through(config, status, state, offsite, node)
    status.local_only = len(only_here([c.name for c in local], held))
    other_cluster_findings(config, status)
    if not config.targets:
        status.add(FAIL, "no [[targets]] configured: nothing leaves this node")
    elif not offsite:
        status.add(FAIL, "no verified off-node copy anywhere")
    else:
        freshness_findings(offsite, node, now, interval, status)
    return status


def held_through(
    config: Config, status: Status, state: dict[str, Any], offsite: list[Copy], node: str
) -> HeldThrough:
    """What each target holds of this node's (policy.offsite): its newest verified copy as
    read now (never another server's), else as the last run saw it."""
    held: dict[str, naming.SnapshotName | None] = {}
    for target in status.targets:
        if target.error:
            held[target.name] = remembered(state, target.name, config.cluster_name)
            continue
        own = [c.name for c in offsite if c.location == target.name and c.name.node == node]
        held[target.name] = max(own) if own else None
    return held


def _print(status: Status, env: Environment) -> None:
    out = env.stdout
    last = status.last_run
    if last:
        snapshot = last.get("snapshot") or {}
        out.write(
            f"Last run:    {shown_time(last.get('started'))}  {last.get('outcome')}"
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
        out.write(f"Last drill:  {shown_time(drill.get('when'))}  {drill.get('name')}: {verdict}\n")
    out.write(f"Source:      {status.source['kind']} ({status.source['reason']})\n")
    sched = status.schedule
    where = sched.get("installed") or "NOT INSTALLED"
    out.write(f"Schedule:    {sched['expression']} ({sched['scheduler']}, {where})\n")
    if sched.get("installed"):  # nothing runs on a schedule that is not installed
        out.write(f"Next run:    {shown_time(sched['next_run'])}\n")
    for location in [status.local, *status.targets]:
        text = f"{plural(location.copies, 'copy')}, {human_size(location.bytes)}"
        if location.error:
            text = f"cannot read: {location.error}"
        elif location.newest_time:
            text += f", newest {shown_time(location.newest_time)}"
        if location is status.local:
            text += f", {status.local_only} only on this node"
        out.write(f"{location.name + ':':<13}{text}\n")
    newest = status.newest_offsite
    if newest:
        out.write(
            f"Newest off-node copy of this node ({newest['node']}): {_when(newest)} on"
            f" {newest['location']}, {newest['level']}\n"
        )
        for other in newest["other_nodes"]:
            out.write(
                f"  other node {other['node']}: {_when(other)} on {other['location']}"
                " (not counted for this node)\n"
            )
    for finding in status.findings:
        out.write(f"{finding['level']}: {finding['message']}\n")
    out.write("Healthy.\n" if status.healthy else "Not healthy.\n")


def _when(copy: dict[str, Any]) -> str:
    """A copy's time and its age: `2026-12-02 02:00:00+01:00 (3h 12m ago)`."""
    return f"{shown_time(copy['time'])} ({human_age(timedelta(seconds=copy['age_seconds']))})"


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


@click.command("status", epilog=epilog("status"))
@json_option("One JSON object.")
@ROOT_OPTION
@pass_context
def command(ctx: Context, as_json: bool, root: Path) -> int:
    """Last run, next run, copies everywhere, and how fresh the newest off-node copy is."""
    return show_status(ctx.config_file, ctx.env, root, as_json)
