"""A stand-in `systemctl` that knows one unit, `k3s`: it stops and starts the lab's etcd.
Any other unit can be enabled (`enable [--now] UNIT`, recorded: `enabled_units`) and disabled
again (`disable [--now] UNIT`).

Run as `python -m k3s_backup.lab.fake_systemctl --state STATEFILE <systemctl args...>`;
the state is the fake k3s's (fake_k3s.FakeK3sState), which records the etcd's PID and ports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from k3s_backup.lab.etcd import EtcdError, EtcdServer
from k3s_backup.lab.fake_k3s import FakeK3sState, write_wrapper
from k3s_backup.lab.hold import hold_here
from k3s_backup.plumbing.loopback import pid_runs, stop_pid

ALWAYS_ACTIVE = ("cron", "ssh", "sshd")
UNITS_FILENAME = "fake-systemctl-units.json"  # beside the state: {"unit": true|false}
ENABLED_FILENAME = "fake-systemctl-enabled.json"  # beside the state: ["unit", ...]


def set_unit_active(statefile: Path, unit: str, active: bool) -> None:
    """Make `is-active UNIT` (any unit but k3s) answer active or inactive from now on."""
    path = statefile.with_name(UNITS_FILENAME)
    units = json.loads(path.read_text()) if path.exists() else {}
    units[unit] = active
    path.write_text(json.dumps(units) + "\n")


def enabled_units(statefile: Path) -> list[str]:
    """The units `systemctl enable` was run for, in order."""
    path = statefile.with_name(ENABLED_FILENAME)
    return list(json.loads(path.read_text())) if path.exists() else []


def _enable(statefile: Path, unit: str, now: bool) -> None:
    path = statefile.with_name(ENABLED_FILENAME)
    path.write_text(json.dumps([*enabled_units(statefile), unit]) + "\n")
    if now:
        set_unit_active(statefile, unit, True)


def _disable(statefile: Path, unit: str, now: bool) -> None:
    path = statefile.with_name(ENABLED_FILENAME)
    path.write_text(json.dumps([u for u in enabled_units(statefile) if u != unit]) + "\n")
    if now:
        set_unit_active(statefile, unit, False)


def _unit_switch(statefile: Path, unit: str) -> bool | None:
    path = statefile.with_name(UNITS_FILENAME)
    if not path.exists():
        return None
    value = json.loads(path.read_text()).get(unit)
    return value if isinstance(value, bool) else None


def install_fake_systemctl(bin_dir: Path, statefile: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    return write_wrapper(bin_dir / "systemctl", "k3s_backup.lab.fake_systemctl", statefile)


def _unit(name: str) -> str:
    return name.removesuffix(".service")


class FakeSystemctl:
    def __init__(self, statefile: Path, stdout: TextIO, stderr: TextIO) -> None:
        self.statefile = statefile
        self.state = FakeK3sState.load(statefile)
        self.stdout = stdout
        self.stderr = stderr
        self.quiet = False

    def run(self, args: list[str]) -> int:
        self.quiet = "--quiet" in args or "-q" in args
        words = [a for a in args if not a.startswith("-")]  # --no-pager, --quiet, ...
        if words == ["daemon-reload"]:
            return 0
        if len(words) != 2:
            self.stderr.write(f"fake systemctl: unsupported arguments: {' '.join(args)}\n")
            return 1
        verb, unit = words[0], _unit(words[1])
        if verb == "enable" and unit != "k3s":
            _enable(self.statefile, unit, "--now" in args)
            return 0
        if verb == "disable" and unit != "k3s":
            _disable(self.statefile, unit, "--now" in args)
            return 0
        if unit != "k3s":
            return self._other_unit(verb, unit)
        actions = {
            "start": self.start,
            "stop": self.stop,
            "restart": self.restart,
            "is-active": self.is_active,
        }
        if verb not in actions:
            self.stderr.write(f"fake systemctl: unsupported verb {verb!r}\n")
            return 1
        return actions[verb]()

    def _other_unit(self, verb: str, unit: str) -> int:
        switch = _unit_switch(self.statefile, unit)
        if verb == "is-active" and switch is not None:
            self._say("active" if switch else "inactive")
            return 0 if switch else 3
        if verb == "is-active" and unit in ALWAYS_ACTIVE:
            self._say("active")
            return 0
        self.stderr.write(f"Unit {unit}.service not found (fake systemctl knows only k3s).\n")
        return 1 if verb != "is-active" else 4

    def _say(self, text: str) -> None:
        if not self.quiet:
            self.stdout.write(text + "\n")

    def _running(self) -> bool:
        pid = self.state.etcd_pid
        return pid is not None and pid_runs(pid, "etcd")

    def is_active(self) -> int:
        active = self.state.service_active and self._running()
        self._say("active" if active else "inactive")
        return 0 if active else 3

    def stop(self) -> int:
        if self.state.etcd_pid is not None:
            stop_pid(self.state.etcd_pid, "etcd")
        self.state.etcd_pid = None
        self.state.service_active = False
        self.state.save(self.statefile)
        hold_here(self.state.hold_at, self.state.hold_dir, "stop")  # K3s is down here
        return 0

    def start(self) -> int:
        if self.state.service_active and self._running():
            return 0
        state = self.state
        etcd = EtcdServer(
            state.etcd_workdir or self.statefile.parent,
            data_dir=state.etcd_data_dir,
            name=state.etcd_name,
            client_port=state.etcd_client_port,
            peer_port=state.etcd_peer_port,
        )
        try:
            etcd.start()  # the process outlives us: its output goes to a log file
        except (EtcdError, TimeoutError) as exc:
            self.stderr.write(
                "Job for k3s.service failed because the control process exited with error"
                f" code.\n{exc}\n"
            )
            return 1
        (state.data_dir / "server" / "db" / "reset-flag").unlink(missing_ok=True)
        state.etcd_pid = etcd.pid
        state.service_active = True
        state.save(self.statefile)
        return 0

    def restart(self) -> int:
        self.stop()
        return self.start()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "--state":
        sys.stderr.write("usage: python -m k3s_backup.lab.fake_systemctl --state FILE ...\n")
        return 2
    return FakeSystemctl(Path(args[1]), sys.stdout, sys.stderr).run(args[2:])


if __name__ == "__main__":
    sys.exit(main())
