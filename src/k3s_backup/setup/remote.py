"""Setup's step 3 on the backup host: connect (showing the lines to add while the key is
refused), the directory made and probed for room (SFTP), or the service waited for."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from k3s_backup.catalogue.inventory import target_copies
from k3s_backup.config import Config, SshTargetConfig
from k3s_backup.errors import BackupError
from k3s_backup.plumbing.plan import Call
from k3s_backup.report import human_size
from k3s_backup.setup.console import Console
from k3s_backup.setup.host_lines import key_help
from k3s_backup.setup.values import SetupStop
from k3s_backup.sources.estimate import snapshot_size_estimate
from k3s_backup.ssh.errors import KeyRefusedError
from k3s_backup.targets.base import Probes, probes_of
from k3s_backup.targets.factory import open_target

T = TypeVar("T")


class Remote:
    def __init__(self, console: Console, config: Config, target: SshTargetConfig) -> None:
        self.console = console
        self.config = config
        self.target = target
        self.help_shown = False

    def key_help(self) -> None:
        """The lines to add on the backup host, once (later: a pointer to them)."""
        if self.help_shown:
            self.console.result("(the lines to add are shown in step 1)")
            return
        self.help_shown = True
        for line in key_help(self.config.cluster_name, self.target):
            self.console.result(line)

    def check(self) -> None:
        t = self.target
        self.console.step(3, f"Connection to {t.user}@{t.host}:{t.port}, {t.path}")
        if t.mode != "sftp":
            line = f"connect to k3s-backup serve ({t.mode}) and list {t.path}"
            self.console.apply(Call("connect", t.host, line, action=self.service_dir))
            return
        line = f"connect, create {t.path} (0700) if missing, check it is writable and has room"
        self.console.apply(Call("connect", t.host, line, action=self.sftp_dir))

    def sftp_dir(self) -> str:
        t = self.target
        with open_target(t, self.config.cluster_name) as opened:
            probes = probes_of(opened)
            self.connect(probes)
            try:
                existed = probes.directory_exists()
                probes.ensure_directory()
                probes.check_writable()
                free = probes.free_space()
            except BackupError as exc:
                raise SetupStop(str(exc)) from None
        if not existed:
            self.console.changed.append("remote dir")
        self.console.result(f"connected; {t.path} {'exists' if existed else 'created (0700)'}")
        self.check_room(free)
        return ""  # said

    def service_dir(self) -> str:
        """The service answers for the key (host-setup made the directory): until it does,
        show the host's two commands and (on a terminal) wait for them."""
        t = self.target

        def listed() -> int:
            with open_target(t, self.config.cluster_name) as service:
                return len(target_copies(service, self.config.cluster_name))

        count = self.until_ready(
            listed,
            BackupError,
            "not ready",
            "Press Enter once both commands ran there (Ctrl-D to stop): ",
            f"{t.host} does not run k3s-backup serve for this key yet; run the commands above"
            " there, then run setup again",
        )
        return f"connected to k3s-backup serve ({t.mode}); {count} copies of ours there"

    def connect(self, probes: Probes) -> None:
        """Connect; while the key is refused, show the line to add and (on a terminal) retry."""
        self.until_ready(
            probes.connect,
            KeyRefusedError,
            "refused",
            "Press Enter once the line is added (Ctrl-D to stop): ",
            f"{self.target.host} does not accept the key yet; add the line above, then run"
            " setup again",
        )

    def until_ready(
        self,
        attempt: Callable[[], T],
        waiting: type[BackupError],
        state: str,
        question: str,
        stop: str,
    ) -> T:
        """`attempt` until it does not fail with `waiting`: each time the key's lines are
        shown and (on a terminal) the operator asked to go on; any other failure stops."""
        while True:
            try:
                return attempt()
            except waiting as exc:
                self.console.result(f"{state}: {exc}")
                self.key_help()
                if self.console.ask(question) is None:
                    raise SetupStop(stop) from None
            except BackupError as exc:
                raise SetupStop(str(exc)) from None

    def check_room(self, free: int | None) -> None:
        t = self.target
        size = snapshot_size_estimate(self.config)
        needed = size * (t.keep + 1)
        if free is None:
            self.console.result(
                "writable; free space unknown (the server lacks statvfs@openssh.com)"
            )
        elif free < needed:
            raise SetupStop(
                f"{t.path} on {t.host} has {human_size(free)} free; keep = {t.keep}"
                f" needs about {human_size(needed)} ({t.keep + 1} x {human_size(size)})"
            )
        else:
            self.console.result(f"writable; {human_size(free)} free (needs ~{human_size(needed)})")
