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


HELP = """
import sys
from k3s_backup.cli import main
assert main(["--help"]) == 0
heavy = ("paramiko", "boto3", "grpc", "zstandard", "pyrage", "pydantic", "k3s_backup.commands")
print(sorted(m for m in sys.modules if m.startswith(heavy)))
"""


def test_help_lists_every_command_without_importing_any() -> None:
    """`k3s-backup --help` is what a newcomer types first: it must be instant (each command's
    module, and what it imports, loads only when that command runs)."""
    probe = subprocess.run([sys.executable, "-c", HELP], capture_output=True, text=True, check=True)
    assert probe.stdout.splitlines()[-1] == "[]"
    commands = probe.stdout.split("Commands:")[1].split("\n\n")[0]
    listed = {line.split()[0] for line in commands.splitlines()[1:]}
    assert {"run", "restore", "setup", "status", "doctor", "extract", "recovery-key"} <= listed
    assert {"host-setup", "serve", "serve-prune"} <= listed


def test_the_registry_names_every_command_module_with_its_own_help() -> None:
    """The short help --help shows comes from the registry (so no module is imported); it must
    say what the command's own docstring says, and no command module may be left out."""
    import importlib
    from pathlib import Path

    import k3s_backup.commands
    from k3s_backup.cli import COMMANDS

    for name, (module, short_help) in COMMANDS.items():
        command = importlib.import_module(f"k3s_backup.commands.{module}").command
        assert command.name == name
        assert (command.help or "").strip().splitlines()[0] == short_help
    package = Path(k3s_backup.commands.__file__).parent
    modules = {
        p.stem
        for p in package.glob("*.py")
        if "\ncommand = " in p.read_text() or "\ndef command(" in p.read_text()
    }
    assert modules == {module for module, _ in COMMANDS.values()}


COLLECTOR = """
import gc, sys
from k3s_backup.cli import main
sys.argv = ["k3s-backup", "status", "--help"]
assert main() == 0  # as the installed command calls it
print(gc.isenabled(), gc.get_freeze_count() > 0)
"""


def test_the_command_runs_with_the_collector_on_and_its_imports_set_aside() -> None:
    """The installed command holds the garbage collector off while a command's modules load
    (tens of thousands of objects, none garbage) and puts them in its permanent generation:
    the command itself then runs with collection on, for its own objects only."""
    probe = subprocess.run(
        [sys.executable, "-c", COLLECTOR], capture_output=True, text=True, check=True
    )
    assert probe.stdout.splitlines()[-1] == "True True"


def test_a_caller_of_main_keeps_its_own_collector() -> None:
    """Tests and other programs calling main() in-process: nothing is frozen or switched."""
    import gc
    import io

    from k3s_backup.cli import main
    from k3s_backup.environment import Environment

    frozen = gc.get_freeze_count()
    out = io.StringIO()
    assert main(["status", "--help"], Environment(stdout=out, stderr=out)) == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
