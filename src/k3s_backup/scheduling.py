"""What `setup` installs to run backups on a schedule, and where: the cron file, or a systemd
service + timer, and a logrotate rule. Every system path is taken under a root directory, so
tests (and staging) install into a temporary tree exactly as they would into `/`.

Files we install carry MARKER on their first line; we replace or remove only files that have it,
so an operator's own /etc/cron.d/k3s-backup (the guide's script) is never silently overwritten.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from k3s_backup.config import CONFIG_ENV_VAR
from k3s_backup.errors import ConfigError
from k3s_backup.plumbing.atomic import write_atomic
from k3s_backup.policy.schedule import Schedule, ScheduleError, on_calendar, parse

MARKER = "# Installed by `k3s-backup setup`; removed by `k3s-backup uninstall`."
SCHEDULE_COMMENT = "# k3s-backup schedule (cron syntax): "
DEFAULT_PROGRAM = Path("/usr/local/bin/k3s-backup")
# Paths pasted into a cron line (run by /bin/sh, where cron also turns % into a newline) and a
# systemd ExecStart= must not need quoting: we refuse anything else instead of escaping it.
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._/+@:-]*$")
CRON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RANDOMIZED_DELAY = "5min"


class Change(Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    ABSENT = "absent"


@dataclass(frozen=True)
class SystemPaths:
    """Every path setup touches, under `root` ("/" on a real node)."""

    root: Path = Path("/")

    def under(self, path: str | Path) -> Path:
        return self.root / Path(path).relative_to("/")

    @property
    def config(self) -> Path:
        return self.under("/etc/k3s-backup/config.toml")

    @property
    def cron(self) -> Path:
        return self.under("/etc/cron.d/k3s-backup")

    @property
    def service(self) -> Path:
        return self.under("/etc/systemd/system/k3s-backup.service")

    @property
    def timer(self) -> Path:
        return self.under("/etc/systemd/system/k3s-backup.timer")

    @property
    def drill_service(self) -> Path:
        return self.under("/etc/systemd/system/k3s-backup-drill.service")

    @property
    def drill_timer(self) -> Path:
        return self.under("/etc/systemd/system/k3s-backup-drill.timer")

    @property
    def logrotate(self) -> Path:
        return self.under("/etc/logrotate.d/k3s-backup")

    @property
    def ssh_dir(self) -> Path:
        return self.under("/root/.ssh")

    @property
    def is_system_root(self) -> bool:
        return self.root.resolve() == Path("/")


def program_path(argv0: str | None = None) -> Path:
    """The installed `k3s-backup` to schedule: the one running now if it is that command, else
    the one on PATH, else the one installed beside this Python, else the guide's location."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if Path(argv0).name == "k3s-backup" and Path(argv0).exists():
        return Path(argv0).absolute()
    found = shutil.which("k3s-backup")
    if found:
        return Path(found).absolute()
    # The console script of the environment this code runs from (/opt/k3s-backup/bin/ after
    # install.sh), when the command is not on PATH.
    beside = Path(sys.executable).parent / "k3s-backup"
    return beside.absolute() if beside.exists() else DEFAULT_PROGRAM


def plain_path(path: Path, what: str) -> str:
    text = str(path)
    if not _PLAIN_PATH.match(text):
        raise ConfigError(
            f"{what} {text!r} holds characters a cron line or systemd unit would need quoted;"
            " use a path of letters, digits and ._/+@:- only"
        )
    return text


RUN = "run --log-only"
DRILL = "drill latest"


def _command(program: Path, config: Path, verb: str = RUN) -> str:
    return f"{plain_path(program, 'program')} --config {plain_path(config, 'config file')} {verb}"


def cron_file(
    schedule: Schedule,
    program: Path,
    config: Path,
    log_file: Path,
    drill: Schedule | None = None,
) -> str:
    """The guide's cron file; the backup's line comes first (what `status` and `doctor` read),
    then the restore rehearsal's, when one is scheduled."""
    log = plain_path(log_file, "log_file")
    drill_line = (
        ""
        if drill is None
        else (f"{drill.cron} root {_command(program, config, DRILL)} >>{log} 2>&1\n")
    )
    return (
        f"{MARKER}\n"
        f"# `run --log-only` appends its own timestamped lines to {log} and prints nothing\n"
        "# else, so the guide's `>> log 2>&1` would no longer log each line twice. What still\n"
        "# reaches stdout/stderr (a bad config, a held lock, a crash traceback) was NOT logged by\n"
        "# run, so appending both streams to the same log keeps every line there exactly once.\n"
        "# PATH: cron's default lacks /usr/local/bin, where K3s installs `k3s`.\n"
        "SHELL=/bin/sh\n"
        f"PATH={CRON_PATH}\n"
        f"{schedule.cron} root {_command(program, config)} >>{log} 2>&1\n"
        f"{drill_line}"
    )


def service_unit(program: Path, config: Path, log_file: Path, verb: str = RUN) -> str:
    log = plain_path(log_file, "log_file")
    what = "K3s etcd backup" if verb == RUN else "K3s etcd restore rehearsal"
    return (
        f"{MARKER}\n"
        "[Unit]\n"
        f"Description={what} (k3s-backup {verb.split()[0]})\n"
        "Wants=network-online.target\n"
        "After=network-online.target k3s.service\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={_command(program, config, verb)}\n"
        "# run logs its own lines to log_file; only what it could not log reaches these.\n"
        f"StandardOutput=append:{log}\n"
        f"StandardError=append:{log}\n"
    )


def timer_unit(schedule: Schedule, verb: str = RUN) -> str:
    return (
        f"{MARKER}\n"
        f"{SCHEDULE_COMMENT}{schedule.expression}\n"
        "[Unit]\n"
        f"Description=Run k3s-backup {verb.split()[0]} on its schedule\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar={on_calendar(schedule)}\n"
        "# A run missed while the node was off happens at the next boot.\n"
        "Persistent=true\n"
        f"RandomizedDelaySec={RANDOMIZED_DELAY}\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


def logrotate_rule(log_file: Path) -> str:
    log = plain_path(log_file, "log_file")
    # run opens the log for each line it appends, so a new file after rotation is simply used.
    return (
        f"{MARKER}\n"
        f"{log} {{\n"
        "    monthly\n"
        "    rotate 12\n"
        "    compress\n"
        "    delaycompress\n"
        "    missingok\n"
        "    notifempty\n"
        "    create 0600 root root\n"
        "}\n"
    )


# ---- installing and removing --------------------------------------------------------------


class ForeignFileError(ConfigError):
    """A file at one of our paths that we did not write: never replaced or removed."""


def is_ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            return stream.readline().rstrip("\n") == MARKER
    except FileNotFoundError:
        return False


def _refuse_foreign(path: Path) -> None:
    if path.exists() and not is_ours(path):
        raise ForeignFileError(
            f"{path} exists and was not written by k3s-backup; not replacing it. Look at it, then"
            f" move it aside (`mv {path} /root/{path.name}.old`) and run setup again"
        )


def planned_change(path: Path, content: str, mode: int, own_only: bool = True) -> Change:
    """What writing `content` to `path` would do (ForeignFileError if it is not ours)."""
    if own_only:
        _refuse_foreign(path)
    try:
        same = path.read_text(encoding="utf-8") == content
    except FileNotFoundError:
        return Change.CREATED
    if same and path.stat().st_mode & 0o777 == mode:
        return Change.UNCHANGED
    return Change.UPDATED


def write_file(path: Path, content: str, mode: int) -> None:
    """Atomically; a missing system directory (/etc/cron.d, ...) gets the usual 0755."""
    write_atomic(path, content.encode("utf-8"), mode, parent_mode=0o777)


def planned_removal(path: Path) -> Change:
    if not path.exists():
        return Change.ABSENT
    _refuse_foreign(path)
    return Change.REMOVED


# ---- what is installed --------------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    scheduler: str  # "cron" | "systemd"
    path: Path
    schedule: Schedule | None  # None: installed but not parseable
    problem: str | None = None


def _cron_schedule(path: Path) -> Installed:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        words = line.split()
        if not words or line.lstrip().startswith("#") or "=" in words[0]:
            continue
        try:
            return Installed("cron", path, parse(" ".join(words[:5])))
        except ScheduleError as exc:
            return Installed("cron", path, None, str(exc))
    return Installed("cron", path, None, "no schedule line in it")


def _timer_schedule(path: Path) -> Installed:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    comment = next((line for line in lines if line.startswith(SCHEDULE_COMMENT)), None)
    calendar = next((line for line in lines if line.startswith("OnCalendar=")), None)
    if comment is None or calendar is None:
        return Installed("systemd", path, None, "no OnCalendar= or schedule comment in it")
    try:
        schedule = parse(comment.removeprefix(SCHEDULE_COMMENT))
        if calendar.removeprefix("OnCalendar=") != on_calendar(schedule):
            return Installed("systemd", path, None, "OnCalendar= does not match its schedule")
    except ScheduleError as exc:
        return Installed("systemd", path, None, str(exc))
    return Installed("systemd", path, schedule)


def installed_schedules(paths: SystemPaths) -> list[Installed]:
    """Every schedule of ours installed under the root (normally none or one)."""
    found: list[Installed] = []
    if paths.cron.exists():
        found.append(_cron_schedule(paths.cron))
    if paths.timer.exists():
        found.append(_timer_schedule(paths.timer))
    return found


def config_file(explicit: Path | None, environ: Mapping[str, str], paths: SystemPaths) -> Path:
    """--config, else $K3S_BACKUP_CONFIG, else the default under the root."""
    if explicit is not None:
        return explicit
    from_env = environ.get(CONFIG_ENV_VAR)
    return Path(from_env) if from_env else paths.config
