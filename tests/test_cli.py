"""The console entry point as a real process: what it costs to start, and that SSH still works."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from k3s_backup.cli import main
assert main(["--version"]) == 0
import paramiko  # what every SSH target and setup uses
paramiko.SSHClient().close()
print(sys.modules.get("invoke"))
"""


def test_the_cli_keeps_paramiko_from_importing_invoke() -> None:
    """paramiko's invoke import is for ssh_config `Match exec`, which we never read: ~35 ms of
    every run's start-up. The fault and demo tests run real SSH copies in such processes."""
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    assert probe.stdout.splitlines()[-1] == "None"


LOGGED = """
import logging
from k3s_backup.cli import main
assert main(["--version"]) == 0
# what paramiko's transport logs when a link is cut under it
logging.getLogger("paramiko.transport").error("Socket exception: Connection reset by peer (104)")
"""


def test_paramikos_own_log_lines_stay_off_stderr() -> None:
    """Without a handler Python prints them bare on stderr ("Socket exception: ..."), beside our
    message that names the target and what failed."""
    probe = subprocess.run(
        [sys.executable, "-c", LOGGED], capture_output=True, text=True, check=True
    )
    assert "Socket exception" not in probe.stderr
