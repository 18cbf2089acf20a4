"""Setup's step 5 as a plan: the files the configured scheduler needs (cron, or systemd units
with their timers), the logrotate rule, ours no longer needed removed, and systemctl told."""

from __future__ import annotations

from pathlib import Path

from k3s_backup import scheduling
from k3s_backup.config import Config
from k3s_backup.plumbing.plan import Plan, note, remove_file, run_step, write_file
from k3s_backup.policy.schedule import parse as parse_schedule
from k3s_backup.scheduling import Change, SystemPaths

UNIT_SUFFIXES = (".service", ".timer")


def schedule_files(
    config: Config, paths: SystemPaths, config_path: Path
) -> tuple[list[tuple[Path, str]], list[Path]]:
    """The files the configured scheduler needs, and those of ours to remove."""
    schedule = parse_schedule(config.schedule)
    drill = parse_schedule(config.drill_schedule) if config.drill_schedule else None
    program, log = scheduling.program_path(), config.log_file
    drill_units = [paths.drill_service, paths.drill_timer]
    if config.scheduler == "cron":
        cron = scheduling.cron_file(schedule, program, config_path, log, drill)
        return [(paths.cron, cron)], [paths.timer, paths.service, *drill_units]
    files = [
        (paths.service, scheduling.service_unit(program, config_path, log)),
        (paths.timer, scheduling.timer_unit(schedule)),
    ]
    if drill is None:
        return files, [paths.cron, *drill_units]
    unit = scheduling.service_unit(program, config_path, log, scheduling.DRILL)
    files += [
        (paths.drill_service, unit),
        (paths.drill_timer, scheduling.timer_unit(drill, scheduling.DRILL)),
    ]
    return files, [paths.cron]


def schedule_plan(config: Config, paths: SystemPaths, config_path: Path) -> Plan:
    """Removals first (a switch of scheduler never leaves both), then every file (unchanged
    ones said so), then systemctl: a daemon-reload when a unit changed, the timers enabled.
    ForeignFileError for a file in the way that we did not write."""
    files, stale = schedule_files(config, paths, config_path)
    files.append((paths.logrotate, scheduling.logrotate_rule(config.log_file)))
    plan, units_changed = Plan(), False
    for path in stale:
        if scheduling.planned_removal(path) is Change.REMOVED:
            units_changed |= path.suffix in UNIT_SUFFIXES
            plan.add(remove_file(path, "not in this schedule"))
    for path, content in files:
        change = scheduling.planned_change(path, content, 0o644)
        if change is Change.UNCHANGED:
            plan.add(note(f"{path}: unchanged"))
            continue
        units_changed |= path.suffix in UNIT_SUFFIXES
        verb = "create" if change is Change.CREATED else "update"
        done = f"{path}: {change.value} (0644)"
        plan.add(write_file(path, content, 0o644, f"{verb} {path} (0644):", done, content))
    commands = [["systemctl", "daemon-reload"]] if units_changed else []
    if config.scheduler == "systemd":
        timers = ["k3s-backup.timer"] + (
            ["k3s-backup-drill.timer"] if config.drill_schedule else []
        )
        commands += [["systemctl", "enable", "--now", timer] for timer in timers]
    skipped = None if paths.is_system_root else f"installing under --root {paths.root}"
    plan.add(*(run_step(command, skipped=skipped) for command in commands))
    return plan
