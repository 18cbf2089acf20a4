"""The schedule and what it left behind: the installed cron job or timer, the scheduler and K3s
running, the last run recorded in the state, and the errors in the last run's log lines."""

from __future__ import annotations

from datetime import datetime

from k3s_backup.checks import FAIL, OK, WARN, freshness, human_age
from k3s_backup.config import Config
from k3s_backup.diagnosis.check import Check, Checks
from k3s_backup.environment import Environment
from k3s_backup.plumbing.commands import CommandError, run_command
from k3s_backup.policy.schedule import Schedule, longest_gap
from k3s_backup.policy.schedule import parse as parse_schedule
from k3s_backup.report import shown_time
from k3s_backup.scheduling import SystemPaths, installed_schedules
from k3s_backup.state import read_state

LOG_TAIL_LINES = 400
SHOWN_ERRORS = 5


def systemctl_active(env: Environment, name: str, unit: str, fix: str) -> Check:
    try:
        done = run_command(["systemctl", "is-active", unit], timeout=30, env=env.environ)
    except CommandError as exc:
        said = "systemctl not found" if exc.not_found else str(exc)
        return Check(name, WARN, f"{said}: cannot tell whether {unit} runs")
    state = done.stdout.strip() or done.stderr.strip() or f"exit {done.returncode}"
    if done.returncode == 0:
        return Check(name, OK, f"{unit} is {state}")
    return Check(name, FAIL, f"{unit} is {state}", fix)


def schedule(config: Config, env: Environment, paths: SystemPaths) -> Checks:
    found = installed_schedules(paths)
    fix = "k3s-backup setup"
    if not found:
        yield Check("schedule", FAIL, f"none installed ({paths.cron} missing)", fix)
    elif any(i.schedule is None for i in found):
        bad = next(i for i in found if i.schedule is None)
        yield Check("schedule", FAIL, f"{bad.path} is not usable: {bad.problem}", fix)
    elif len(found) > 1:
        both = " and ".join(str(i.path) for i in found)
        yield Check("schedule", WARN, f"both {both} are installed: runs twice", fix)
    else:
        one = found[0]
        assert one.schedule is not None
        saw = f"{one.schedule.expression!r} ({one.scheduler}) in {one.path}"
        if one.schedule.cron != parse_schedule(config.schedule).cron:
            saw += f", but the configuration says {config.schedule!r}"
            yield Check("schedule", WARN, saw, fix)
        else:
            yield Check("schedule", OK, saw)
    scheduler = found[0].scheduler if found else config.scheduler
    if scheduler == "systemd":
        unit, fix = "k3s-backup.timer", "systemctl enable --now k3s-backup.timer"
    else:
        unit, fix = "cron", "systemctl enable --now cron"
    yield systemctl_active(env, "scheduler", unit, fix)
    yield systemctl_active(env, "k3s", "k3s", "systemctl start k3s; journalctl -u k3s -n 50")


def last_run(config: Config, env: Environment, paths: SystemPaths) -> Check:
    state = read_state(config.state_dir)
    last, success = state.get("last_run"), state.get("last_success")
    interval = longest_gap(_schedule(config, paths))
    if not isinstance(last, dict):
        return Check("last run", FAIL, "no run recorded", "k3s-backup run")
    if last.get("outcome") != "success":
        return Check(
            "last run",
            FAIL,
            f"{shown_time(last.get('started'))} ended {last.get('outcome')}"
            f" (exit {last.get('exit_code')})",
            f"k3s-backup run, and read {config.log_file}",
        )
    assert isinstance(success, dict)
    age = env.now() - datetime.fromisoformat(str(success.get("started")))
    level = freshness(age, interval)
    saw = f"succeeded {human_age(age)} ({shown_time(success.get('started'))})"
    if level == OK:
        return Check("last run", OK, saw)
    return Check("last run", level, f"{saw}: late for a {interval} schedule", "k3s-backup run")


def _schedule(config: Config, paths: SystemPaths) -> Schedule:
    """The installed schedule when one is usable (what really runs), else the configured one."""
    for installed in installed_schedules(paths):
        if installed.schedule is not None:
            return installed.schedule
    return parse_schedule(config.schedule)


def log(config: Config) -> Check:
    path = config.log_file
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except FileNotFoundError:
        return Check("log", WARN, f"{path} does not exist yet (no run logged)", "k3s-backup run")
    starts = [i for i, line in enumerate(lines) if "] Starting etcd backup" in line]
    recent = lines[starts[-1] :] if starts else lines
    errors = [line for line in recent if "] ERROR: " in line or not line.startswith("[")]
    if not errors:
        return Check("log", OK, f"no errors in the last run's lines of {path}")
    shown = "\n".join(errors[-SHOWN_ERRORS:])
    return Check("log", WARN, f"errors in the last run in {path}:\n{shown}", f"tail -50 {path}")
